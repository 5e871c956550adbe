package deploy

import (
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// imagePlatforms are the image's platforms: GOARCH and its ELF machine.
var imagePlatforms = []struct {
	goarch  string
	machine elf.Machine
}{
	{"amd64", elf.EM_X86_64},
	{"arm64", elf.EM_AARCH64},
}

// TestImage_StaticPerPlatform cross-compiles phoenix for each platform of
// the image, as the Dockerfile's build stage does (on this machine's own
// architecture, no emulation, from the files .dockerignore lets into the
// build context, so a package left out of it fails here), and checks that each binary is a static ELF
// for its architecture: no interpreter and no dynamic section, so it runs
// on distroless/static.
func TestImage_StaticPerPlatform(t *testing.T) {
	ctxDir := buildContext(t)
	for _, p := range imagePlatforms {
		t.Run(p.goarch, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "phoenix")
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/phoenix")
			cmd.Dir = ctxDir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+p.goarch)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s: %v\n%s", p.goarch, err, out)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != p.machine || f.Type != elf.ET_EXEC || f.Class != elf.ELFCLASS64 {
				t.Errorf("binary is %v %v %v, want a 64-bit %v %v", f.Class, f.Type, f.Machine, elf.ET_EXEC, p.machine)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
					t.Errorf("binary has a %v program header: it is dynamically linked", prog.Type)
				}
			}
			if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
				t.Error("binary has a .dynamic or .interp section")
			}
		})
	}
}

// buildContext copies what Docker would send as the build context (the
// repository filtered by .dockerignore, with Docker's own matcher) into a
// temporary folder and returns it.
func buildContext(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel("..", path)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		if skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel)); err != nil || skip {
			return err
		}
		data, err := os.ReadFile(path) // #nosec G304 -- walking this repository
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o600)
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
	return dst
}

// TestImage_Dockerfile: the build stage runs on the builder's platform and
// cross-compiles for the target with the command tested above, so that
// buildx makes both images natively; the README shows that command.
func TestImage_Dockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM ",
		"ARG TARGETOS=linux TARGETARCH\n",
		"ARG VERSION=dev\n",
		`RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w -X main.version=$VERSION" -o /out/phoenix ./cmd/phoenix` + "\n",
		"FROM gcr.io/distroless/static-debian12:nonroot\n",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "docker buildx build --platform linux/amd64,linux/arm64 ") {
		t.Error("README does not show the multi-platform buildx command")
	}
}
