package verify

import "math"

// logistic is a logistic model over the features of a pair: the
// probability that the pair is the same, accepted from Threshold up.
type logistic struct {
	Weights   []float64
	Threshold float64
}

func (m logistic) probability(f []float64) float64 {
	z := 0.0
	for i, w := range m.Weights {
		z += w * f[i]
	}
	return 1 / (1 + math.Exp(-z))
}
