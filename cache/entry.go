package cache

import (
	"encoding/binary"
	"errors"
)

// An entry on disk is a header and the value:
//
//	byte     format version (1)
//	int64    created, unix nanoseconds, big endian
//	int64    expires, unix nanoseconds, big endian; 0 never
//	uvarint  length of the namespace, then its bytes
//	uvarint  length of the model, then its bytes
//	...      the value
//
// The header is fixed-size up front so that loading the index reads a few
// bytes of each entry, not its answer.
const entryFormat = 1

type header struct {
	created, expires int64
	namespace, model string
}

func encodeValue(h header, value []byte) []byte {
	b := make([]byte, 0, 17+2*binary.MaxVarintLen64+len(h.namespace)+len(h.model)+len(value))
	b = append(b, entryFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(h.created))
	b = binary.BigEndian.AppendUint64(b, uint64(h.expires))
	b = binary.AppendUvarint(b, uint64(len(h.namespace)))
	b = append(b, h.namespace...)
	b = binary.AppendUvarint(b, uint64(len(h.model)))
	b = append(b, h.model...)
	return append(b, value...)
}

var errBadEntry = errors.New("malformed cache entry")

// decodeValue splits a stored entry into its header and value; the value
// aliases v.
func decodeValue(v []byte) (header, []byte, error) {
	if len(v) < 17 || v[0] != entryFormat {
		return header{}, nil, errBadEntry
	}
	h := header{created: int64(binary.BigEndian.Uint64(v[1:9])), expires: int64(binary.BigEndian.Uint64(v[9:17]))}
	rest := v[17:]
	var ok bool
	if h.namespace, rest, ok = cutString(rest); !ok {
		return header{}, nil, errBadEntry
	}
	if h.model, rest, ok = cutString(rest); !ok {
		return header{}, nil, errBadEntry
	}
	return h, rest, nil
}

func cutString(b []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}
