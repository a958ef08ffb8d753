package plainjson

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestArrowsAndAmpersandsStayReadable(t *testing.T) {
	v := map[string]string{"label": "path=2->3 <b> & c"}
	b, err := Marshal(v)
	require.NoError(t, err)
	assert.Equal(t, `{"label":"path=2->3 <b> & c"}`, string(b))

	b, err = MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	assert.Equal(t, "{\n  \"label\": \"path=2->3 <b> & c\"\n}", string(b))

	var out bytes.Buffer
	require.NoError(t, NewEncoder(&out).Encode(v))
	assert.Equal(t, `{"label":"path=2->3 <b> & c"}`+"\n", out.String())

	// The same bytes read back as the same value, and as json.Marshal's
	// apart from the escaping.
	var back map[string]string
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, v, back)
	std, err := json.Marshal(v)
	require.NoError(t, err)
	assert.Contains(t, string(std), `2-\u003e3`, "what the standard library does")
}

func TestErrorsAreTheStandardOnes(t *testing.T) {
	_, err := Marshal(func() {})
	var unsupported *json.UnsupportedTypeError
	assert.ErrorAs(t, err, &unsupported)
}
