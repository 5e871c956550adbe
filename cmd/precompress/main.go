// Command precompress writes the brotli (.br) and gzip (.gz) forms of the
// embedded text assets beside them, at the best compression of each, so
// that the binary serves them without compressing anything at run time
// (brotli at its best level takes about 2 s for the assets). Run it after
// changing an asset: go generate . (TestAssets_Precompressed fails until
// then).
//
//	go run ./cmd/precompress assets
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"

	"github.com/andybalholm/brotli"

	"phoenix/handlers"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: precompress DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "precompress:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	root, err := os.OpenRoot(dir) // reads and writes stay inside dir
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !handlers.Precompressible(path) {
			return nil
		}
		data, err := root.ReadFile(path)
		if err != nil {
			return err
		}
		var br, gz bytes.Buffer
		bw := brotli.NewWriterLevel(&br, brotli.BestCompression)
		gw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if err != nil {
			return err
		}
		for _, w := range []interface {
			Write([]byte) (int, error)
			Close() error
		}{bw, gw} {
			if _, err := w.Write(data); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
		}
		for ext, b := range map[string][]byte{".br": br.Bytes(), ".gz": gz.Bytes()} {
			if err := root.WriteFile(path+ext, b, 0o644); err != nil { // #nosec G306 -- a source file of the repository
				return err
			}
		}
		fmt.Printf("%s: %d → br %d, gz %d bytes\n", path, len(data), br.Len(), gz.Len())
		return nil
	})
}
