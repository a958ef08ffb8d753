package report

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A simulated guest's clock jumps over scaled sleeps: 29 s ahead at the
// first step, 84 s before collecting, 262 s after. Evidence stamped by it
// lands between the host times of the readings around it, never past the
// try's end.
func TestClockPlacesGuestTimesBetweenTheReadingsAroundThem(t *testing.T) {
	h0 := time.Date(2026, 12, 2, 2, 52, 50, 0, time.UTC)
	m := clockMap{
		{Host: h0, Guest: h0.Add(29 * time.Second)},
		{Host: h0.Add(time.Second), Guest: h0.Add(time.Second + 84*time.Second)},
		{Host: h0.Add(3 * time.Second), Guest: h0.Add(3*time.Second + 262*time.Second)},
	}
	snapshot := h0.Add(3*time.Second + 262*time.Second - time.Second) // a second before the last reading
	got, ok := m.host(snapshot)
	assert.True(t, ok)
	assert.True(t, got.After(h0.Add(time.Second)) && got.Before(h0.Add(3*time.Second)), "between the readings: %s", got)

	before, _ := m.host(h0) // guest time before the first reading: its offset
	assert.Equal(t, h0.Add(-29*time.Second), before)

	assert.Contains(t, m.describe(), "29.0 s ahead of the host's at the first step")
	assert.Contains(t, m.describe(), "4m22s ahead of the host's after collecting it")

	_, ok = clockMap(nil).host(h0)
	assert.False(t, ok, "no reading, no placing")
	assert.Contains(t, clockMap(nil).describe(), "was not read")
	behind := clockMap{{Host: h0, Guest: h0.Add(-3 * time.Minute)}}
	assert.Contains(t, behind.describe(), "3m0s behind the host's")
	assert.Contains(t, clockMap{{Host: h0, Guest: h0.Add(300 * time.Millisecond)}}.describe(), "within a second of the host's")
}
