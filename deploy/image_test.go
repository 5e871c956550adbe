package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
// architecture, no emulation), and checks that each binary is a static ELF
// for its architecture: no interpreter and no dynamic section, so it runs
// on distroless/static.
func TestImage_StaticPerPlatform(t *testing.T) {
	for _, p := range imagePlatforms {
		t.Run(p.goarch, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "phoenix")
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/phoenix")
			cmd.Dir = ".."
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
		`RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/phoenix ./cmd/phoenix` + "\n",
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
