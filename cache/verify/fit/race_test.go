//go:build race

package main

// raceEnabled: the fit's twenty thousand rounds take a minute under the
// race detector; make test runs TestModelIsFitted without it.
const raceEnabled = true
