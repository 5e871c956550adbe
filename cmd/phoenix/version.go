package main

import (
	"runtime/debug"
	"strconv"
)

// version is the build's version, set at link time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/phoenix
//
// (make build sets it from git describe). Empty, buildVersion reads what
// the Go toolchain recorded: the module version of a `go install`, else
// the commit, marked -dirty when built from changed files.
var version string

// buildVersion is what every role reports with its heartbeat.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty, _ = strconv.ParseBool(s.Value)
		}
	}
	if rev == "" {
		return "devel"
	}
	rev = rev[:min(len(rev), 12)]
	if dirty {
		rev += "-dirty"
	}
	return rev
}
