//go:build race

package tokens

// raceEnabled: TestEstimate counts 600 kB exactly, 15 s under the race
// detector; make test runs it without it.
const raceEnabled = true
