//go:build race

package main

// raceEnabled: the fit's feature extraction over five sets is slow under
// the race detector; make test runs TestModelIsFitted without it.
const raceEnabled = true
