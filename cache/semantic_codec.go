package cache

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// An entry on disk (little endian):
//
//	version 1 | uvarint-prefixed ID, Partition, Text, Target, Namespace |
//	int64 Created (Unix ns) | uvarint dims | dims × float32
const entryVersion = 1

func encodeEntry(e SemanticEntry, vec []float32) []byte {
	b := make([]byte, 0, 1+len(e.ID)+len(e.Partition)+len(e.Text)+len(e.Target)+len(e.Namespace)+5*2+8+2+4*len(vec))
	b = append(b, entryVersion)
	for _, s := range []string{e.ID, e.Partition, e.Text, e.Target, e.Namespace} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Created.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(vec)))
	for _, x := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

var errCorrupt = errors.New("corrupt semantic entry")

// decodeEntry parses an entry; with withVector it also returns the vector
// (a fresh slice, safe after the transaction).
func decodeEntry(b []byte, withVector bool) (SemanticEntry, []float32, error) {
	var e SemanticEntry
	if len(b) < 1 || b[0] != entryVersion {
		return e, nil, errCorrupt
	}
	b = b[1:]
	var fields [5]string
	for i := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return e, nil, errCorrupt
		}
		fields[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	e.ID, e.Partition, e.Text, e.Target, e.Namespace = fields[0], fields[1], fields[2], fields[3], fields[4]
	if len(b) < 8 {
		return e, nil, errCorrupt
	}
	e.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(b)))
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) != 4*n {
		return e, nil, errCorrupt
	}
	if !withVector {
		return e, nil, nil
	}
	b = b[k:]
	vec := make([]float32, n)
	for i := range vec {
		vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return e, vec, nil
}

// encodeCentroids: uvarint k | uvarint dims | k×dims float32.
func encodeCentroids(c [][]float32) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(c)))
	dims := 0
	if len(c) > 0 {
		dims = len(c[0])
	}
	b = binary.AppendUvarint(b, uint64(dims))
	for _, v := range c {
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b
}

func decodeCentroids(b []byte) ([][]float32, error) {
	k, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	dims, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) != 4*k*dims || k == 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	c := make([][]float32, k)
	for i := range c {
		c[i] = make([]float32, dims)
		for j := range c[i] {
			c[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(b))
			b = b[4:]
		}
	}
	return c, nil
}

func encodeList(l int) []byte { return binary.AppendUvarint(nil, uint64(l)) }

// decodeList returns -1 for a damaged value: the entry is assigned again.
func decodeList(b []byte) int {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > math.MaxInt32 {
		return -1
	}
	return int(l)
}
