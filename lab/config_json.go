package lab

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/sxlab/sxlab/internal/plainjson"
	"github.com/sxlab/sxlab/internal/strictyaml"
)

// A configuration in JSON (run.json's snapshot, hosts in summaries) uses
// the keys a user wrote in config.yaml — "hosts", "slots", "vz",
// "time_scale" — not Go's field names: it is written through the YAML
// form, and read back the same way.

// MarshalJSON writes c under its YAML keys.
func (c Config) MarshalJSON() ([]byte, error) { return marshalYAMLForm(c) }

// UnmarshalJSON reads what MarshalJSON writes, and also the snapshots of
// run folders written before it, which used Go's field names.
func (c *Config) UnmarshalJSON(b []byte) error {
	type goFields Config // without these methods: encoding/json's own reading
	return unmarshalYAMLForm(b, c, (*goFields)(c), "Lab")
}

// MarshalJSON writes h under its YAML keys.
func (h Host) MarshalJSON() ([]byte, error) { return marshalYAMLForm(h) }

// UnmarshalJSON reads what MarshalJSON writes, and run folders written
// before it.
func (h *Host) UnmarshalJSON(b []byte) error {
	type goFields Host
	return unmarshalYAMLForm(b, h, (*goFields)(h), "Name")
}

func marshalYAMLForm(v any) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := nodeJSON(&b, &n); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// nodeJSON writes a YAML node as JSON, keeping the order of mappings: the
// order of matrix.axes is the order of the cells.
func nodeJSON(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			b.WriteString("null")
			return nil
		}
		return nodeJSON(b, n.Content[0])
	case yaml.AliasNode:
		return nodeJSON(b, n.Alias)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k, err := plainjson.Marshal(n.Content[i].Value)
			if err != nil {
				return err
			}
			b.Write(k)
			b.WriteByte(':')
			if err := nodeJSON(b, n.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := nodeJSON(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		var v any
		switch n.ShortTag() {
		case "!!int", "!!float", "!!bool", "!!null":
			if err := n.Decode(&v); err != nil {
				return err
			}
		default:
			v = n.Value
		}
		out, err := plainjson.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(out)
	default:
		return fmt.Errorf("configuration snapshot: YAML node kind %d", n.Kind)
	}
	return nil
}

// unmarshalYAMLForm decodes JSON (which is YAML) into out with the
// configuration's own decoder. A document with the Go field name legacy
// at its top is an older snapshot, read into legacyOut by encoding/json.
// A key this version does not know is not an error here: the snapshot
// is a record of another version's configuration.
func unmarshalYAMLForm(b []byte, out, legacyOut any, legacy string) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	if _, old := probe[legacy]; old {
		return json.Unmarshal(b, legacyOut)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		return fmt.Errorf("configuration snapshot: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	strictyaml.NewDecoder().Decode(doc.Content[0], out)
	return nil
}
