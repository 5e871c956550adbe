package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/compress"
)

// assetFile is one embedded asset, kept in memory with its precompressed
// forms (nil where there is none or it would not be smaller).
type assetFile struct {
	body, br, gz []byte
	version      string // a hash of body, also its ETag
	ext          string // for the Content-Type
}

// assetMaxAge is an asset's Cache-Control: its URL changes with its content.
const assetMaxAge = "public, max-age=31536000, immutable"

// Precompressible reports whether an asset gets .br and .gz forms in the
// repository (cmd/precompress writes them): the text formats.
func Precompressible(name string) bool {
	switch path.Ext(name) {
	case ".css", ".js", ".svg":
		return true
	}
	return false
}

func isCompressedForm(name string) bool {
	return strings.HasSuffix(name, ".br") || strings.HasSuffix(name, ".gz")
}

func loadAsset(fsys fs.FS, name string) (*assetFile, error) {
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	f := &assetFile{body: body, version: hex.EncodeToString(sum[:4]), ext: path.Ext(name)}
	if !Precompressible(name) {
		return f, nil
	}
	for _, form := range []struct {
		ext string
		to  *[]byte
	}{{".br", &f.br}, {".gz", &f.gz}} {
		b, err := fs.ReadFile(fsys, name+form.ext)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // a new asset before go generate: served as it is
		case err != nil:
			return nil, err
		case len(b) < len(body):
			*form.to = b
		}
	}
	return f, nil
}

// Serve handles GET /assets/* from memory: the brotli or gzip form that
// the client accepts, else the file itself, with Vary: Accept-Encoding, an
// ETag per form (a 304 when it matches) and a year-long Cache-Control.
// The forms come from the repository rather than from compressing at
// start: brotli's best level takes about 2 s for these files (each app in
// every test would pay it), and a faster level makes them larger.
// Unknown names go on to the next handler (a 404).
func (a *Assets) Serve(c *fiber.Ctx) error {
	f, ok := a.files[strings.TrimPrefix(c.Path(), "/assets/")]
	if !ok || (c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead) {
		return c.Next()
	}
	body, encoding := f.body, ""
	if f.br != nil || f.gz != nil {
		c.Vary(fiber.HeaderAcceptEncoding)
		body, encoding = f.negotiate(c)
	}
	// Weak, as compression leaves every other tag (see weakenETag); one
	// per form all the same, as each is its own byte sequence.
	tag := `W/"` + f.version + encoding + `"`
	c.Set(fiber.HeaderCacheControl, assetMaxAge)
	c.Set(fiber.HeaderETag, tag)
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), tag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Type(f.ext)
	if encoding != "" {
		c.Set(fiber.HeaderContentEncoding, encoding)
	}
	return c.Send(body)
}

// negotiate picks the smallest form of f that the client accepts: brotli,
// gzip, else the file itself. The client's q-values count (gzip;q=0 refuses
// gzip), its order does not: browsers list gzip before br.
func (f *assetFile) negotiate(c *fiber.Ctx) ([]byte, string) {
	if c.Get(fiber.HeaderAcceptEncoding) == "" {
		return f.body, "" // AcceptsEncodings would take any offer
	}
	switch {
	case f.br != nil && c.AcceptsEncodings("br") == "br":
		return f.br, "br"
	case f.gz != nil && c.AcceptsEncodings("gzip") == "gzip":
		return f.gz, "gzip"
	}
	return f.body, ""
}

// compression compresses answers (HTML, fragments, CSV) with Fiber's
// compress middleware: brotli (level 4) for clients that accept it, else
// gzip (level 6); small bodies (under 200 bytes) and answers that already
// carry a Content-Encoding (the precompressed assets) pass as they are.
// Every answer says Vary: Accept-Encoding, so that no cache hands a
// compressed body to a client that did not ask for one, or the reverse.
func compression() fiber.Handler {
	compressor := compress.New(compress.Config{Level: compress.LevelDefault})
	return func(c *fiber.Ctx) error {
		c.Vary(fiber.HeaderAcceptEncoding)
		err := compressor(c)
		weakenETag(c)
		return err
	}
}

// weakenETag marks the ETag of a response that the compress middleware
// encoded as weak: a strong tag names one byte sequence, and the encoded
// body is another (nginx does the same). A weak If-None-Match still gets
// its 304 from etag.New.
func weakenETag(c *fiber.Ctx) {
	h := &c.Response().Header
	if tag := h.Peek(fiber.HeaderETag); len(tag) > 0 && len(h.ContentEncoding()) > 0 && !bytes.HasPrefix(tag, []byte("W/")) {
		h.Set(fiber.HeaderETag, "W/"+string(tag))
	}
}
