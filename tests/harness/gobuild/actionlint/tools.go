//go:build tools

// Package tools pins actionlint's command for go build.
package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"
