package lab

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted replaces secrets when a configuration is shown.
const Redacted = "<redacted>"

// secretKeys are the keys whose values are never shown: inline passwords,
// private keys and tokens.
var secretKeys = []string{"password", "private_key", "token", "secret"}

// EffectiveYAML renders the configuration after defaults, file,
// environment and flags, with secrets redacted.
func (l *Loaded) EffectiveYAML() ([]byte, error) {
	var root yaml.Node
	if err := root.Encode(l.Config); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	redact(&root)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# effective configuration of %s\n", l.File)
	for _, o := range l.Overrides {
		fmt.Fprintf(&b, "# %s from %s\n", o.Key, o.Source)
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	return b.Bytes(), nil
}

// Redact returns a copy of the configuration with secrets replaced, for
// snapshots written into run folders.
func (c Config) Redact() Config {
	out := c
	out.Images = make(map[string]Image, len(c.Images))
	for k, img := range c.Images {
		img.Auth = img.Auth.redact()
		out.Images[k] = img
	}
	out.Hosts = make([]Host, len(c.Hosts))
	for i, h := range c.Hosts {
		if h.SSH != nil {
			s := *h.SSH
			s.Auth = s.Auth.redact()
			h.SSH = &s
		}
		out.Hosts[i] = h
	}
	return out
}

func (a Auth) redact() Auth {
	if a.Password != "" {
		a.Password = Redacted
	}
	return a
}

func redact(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isSecretKey(k.Value) && v.Kind == yaml.ScalarNode && v.Value != "" {
				n.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: Redacted}
				continue
			}
			redact(v)
		}
		return
	}
	for _, c := range n.Content {
		redact(c)
	}
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if k == s || strings.HasSuffix(k, "_"+s) {
			return true
		}
	}
	return false
}
