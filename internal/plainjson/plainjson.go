// Package plainjson is encoding/json without HTML escaping. Every JSON
// sxlab writes — journal, run folder, command output — is read by people
// and tools, never embedded in HTML, and encoding/json's default turns the
// upgrade path "2->3" into "2-\u003e3".
package plainjson

import (
	"bytes"
	"encoding/json"
	"io"
)

// NewEncoder is json.NewEncoder with HTML escaping off.
func NewEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// Marshal is json.Marshal without HTML escaping.
func Marshal(v any) ([]byte, error) {
	return MarshalIndent(v, "", "")
}

// MarshalIndent is json.MarshalIndent without HTML escaping.
func MarshalIndent(v any, prefix, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := NewEncoder(&b)
	enc.SetIndent(prefix, indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
