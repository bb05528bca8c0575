package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/lbgpt/lbgpt/internal/tokens"
)

type embedRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// embedInput is one input of an embeddings request: text or token ids.
type embedInput struct {
	text string
	ids  []int
}

// nativeDims returns the vector length of an embeddings model.
func nativeDims(model string) int {
	if tokens.Canonical(model) == "text-embedding-3-large" {
		return 3072
	}
	return 1536
}

func (c *call) embeddings() {
	var req embedRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		c.badJSON()
		return
	}
	model, ok := c.model(req.Model)
	if !ok {
		return
	}
	if !isEmbedding(model) {
		c.fail(http.StatusBadRequest, "The model `"+model+"` does not support embeddings.", "invalid_request_error", "model", "")
		return
	}
	inputs, ok := parseInputs(req.Input)
	if !ok {
		c.fail(http.StatusBadRequest, "'input' must be a non-empty string, an array of non-empty strings, an array of token ids or an array of arrays of token ids.", "invalid_request_error", "input", "")
		return
	}
	dims := nativeDims(model)
	if req.Dimensions != nil {
		if tokens.Canonical(model) == "text-embedding-ada-002" {
			c.fail(http.StatusBadRequest, "This model does not support specifying dimensions.", "invalid_request_error", "dimensions", "")
			return
		}
		if *req.Dimensions < 1 || *req.Dimensions > dims {
			c.fail(http.StatusBadRequest, "Invalid value for 'dimensions': expected an integer between 1 and "+strconv.Itoa(dims)+".", "invalid_request_error", "dimensions", "")
			return
		}
		dims = *req.Dimensions
	}
	b64 := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		b64 = true
	default:
		c.fail(http.StatusBadRequest, "Invalid value for 'encoding_format': expected 'float' or 'base64'.", "invalid_request_error", "encoding_format", "")
		return
	}

	c.drawFault(false)
	if c.earlyFault() {
		return
	}
	n := 0
	for _, in := range inputs {
		if in.ids != nil {
			n += len(in.ids)
		} else {
			n += tokens.Count(model, in.text)
		}
	}
	if !c.admitOrRefuse(model, n) {
		return
	}
	c.rec.PromptTokens = n
	c.latency = c.acct.TTFT
	if !c.sleep(c.latency) {
		return
	}

	b := getBuf()
	defer putBuf(b)
	o := append(*b, `{"object":"list","data":[`...)
	vec := make([]float32, dims)
	for i, in := range inputs {
		if i > 0 {
			o = append(o, ',')
		}
		embed(vec, in)
		o = append(o, `{"object":"embedding","index":`...)
		o = strconv.AppendInt(o, int64(i), 10)
		o = append(o, `,"embedding":`...)
		if b64 {
			raw := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(f))
			}
			o = append(o, '"')
			o = base64.StdEncoding.AppendEncode(o, raw)
			o = append(o, '"')
		} else {
			o = append(o, '[')
			for j, f := range vec {
				if j > 0 {
					o = append(o, ',')
				}
				o = strconv.AppendFloat(o, float64(f), 'g', -1, 32)
			}
			o = append(o, ']')
		}
		o = append(o, '}')
	}
	o = append(o, `],"model":`...)
	o = appendString(o, model)
	o = append(o, `,"usage":{"prompt_tokens":`...)
	o = strconv.AppendInt(o, int64(n), 10)
	o = append(o, `,"total_tokens":`...)
	o = strconv.AppendInt(o, int64(n), 10)
	o = append(o, "}}\n"...)
	*b = o
	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		o = o[:len(o)/2]
	}
	c.send(http.StatusOK, o)
}

// parseInputs accepts a string, an array of strings, an array of token ids
// or an array of arrays of token ids, none of them empty.
func parseInputs(raw json.RawMessage) ([]embedInput, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, false
	}
	var out []embedInput
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		out = []embedInput{{text: s}}
	case '[':
		var ss []string
		var ids []int
		var idss [][]int
		switch {
		case json.Unmarshal(raw, &ss) == nil:
			for _, s := range ss {
				out = append(out, embedInput{text: s})
			}
		case json.Unmarshal(raw, &ids) == nil:
			out = []embedInput{{ids: ids}}
		case json.Unmarshal(raw, &idss) == nil:
			for _, ids := range idss {
				out = append(out, embedInput{ids: ids})
			}
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	if len(out) == 0 {
		return nil, false
	}
	for _, in := range out {
		if in.text == "" && len(in.ids) == 0 {
			return nil, false
		}
	}
	return out, true
}

// embed fills vec with a unit vector determined by the input. A shorter vec
// is the normalised prefix of a longer one, as OpenAI's dimensions parameter
// shortens its vectors.
func embed(vec []float32, in embedInput) {
	h := sha256.New()
	if in.ids != nil {
		var n [8]byte
		h.Write([]byte{1})
		for _, id := range in.ids {
			binary.LittleEndian.PutUint64(n[:], uint64(id))
			h.Write(n[:])
		}
	} else {
		h.Write([]byte{0})
		h.Write([]byte(in.text))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:]), binary.LittleEndian.Uint64(sum[8:])))
	var norm float64
	v64 := make([]float64, len(vec))
	for i := range v64 {
		v64[i] = rng.NormFloat64()
		norm += v64[i] * v64[i]
	}
	norm = math.Sqrt(norm)
	for i, x := range v64 {
		vec[i] = float32(x / norm)
	}
}

func (c *call) listModels() {
	c.drawFault(false)
	if c.earlyFault() {
		return
	}
	body := c.s.modelList
	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		body = body[:len(body)/2]
	}
	c.send(http.StatusOK, body)
}
