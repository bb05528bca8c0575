//go:build race

package main

// raceEnabled: scoring the dev split (2,091 prompts stored, 401 looked up)
// takes 25 s under the race detector; make test runs TestSemanticQuality
// without it.
const raceEnabled = true
