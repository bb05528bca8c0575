package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	openai "github.com/sashabaranov/go-openai"
)

// requestKey identifies requests that must get the same answer: the SHA-256
// of the request re-encoded from its decoded form (struct fields in a fixed
// order, map keys sorted, numbers normalised), without the fields that do
// not change the answer: stream, stream_options and user.
func requestKey(req openai.ChatCompletionRequest) string {
	req.Stream = false
	req.StreamOptions = nil
	req.User = ""
	b, err := json.Marshal(req)
	if err != nil {
		return "" // not coalesced
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
