// Package miniprogram holds the example Mini Program's logic modules for
// Go: wxpaysim's browser simulator (bench/sim, GET /sim/miniprogram/lib/)
// serves them, so the page in the browser runs the very files the Mini
// Program ships. The Mini Program itself is the rest of this folder; see
// README.md here.
package miniprogram

import "embed"

// Lib holds lib/*.js (paths "lib/<name>.js"), read-only and safe for
// concurrent use.
//
//go:embed lib/*.js
var Lib embed.FS
