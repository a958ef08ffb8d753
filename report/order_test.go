package report

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Cells are filled two at a time but their suites come in the cells'
// order, and never more than two filled cells wait in memory.
func TestEachCellInOrderKeepsOrderAndBound(t *testing.T) {
	defer goleak.VerifyNone(t)
	cells := make([]Cell, 40)
	for i := range cells {
		cells[i].Cell = fmt.Sprint(i)
	}
	var mu sync.Mutex
	held, most := 0, 0 // filled and not yet used
	var order []string
	err := eachCellInOrder(cells, 2, func(c Cell) (Cell, error) {
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		mu.Lock()
		held++
		most = max(most, held)
		mu.Unlock()
		return c, nil
	}, func(c Cell) error {
		mu.Lock()
		held--
		order = append(order, c.Cell)
		mu.Unlock()
		return nil
	})
	require.NoError(t, err)
	require.Len(t, order, len(cells))
	for i, id := range order {
		assert.Equal(t, fmt.Sprint(i), id)
	}
	assert.LessOrEqual(t, most, 2)
}

// The first error wins, from a fill or from its use; nothing starts
// after it and nothing is left running.
func TestEachCellInOrderStopsAtTheFirstError(t *testing.T) {
	defer goleak.VerifyNone(t)
	cells := make([]Cell, 30)
	for i := range cells {
		cells[i].Cell = fmt.Sprint(i)
	}
	var mu sync.Mutex
	var filled, used []string
	bad := errors.New("cells/7: damaged steps.jsonl")
	err := eachCellInOrder(cells, 2, func(c Cell) (Cell, error) {
		mu.Lock()
		filled = append(filled, c.Cell)
		mu.Unlock()
		if c.Cell == "7" {
			return c, bad
		}
		return c, nil
	}, func(c Cell) error {
		used = append(used, c.Cell)
		return nil
	})
	require.ErrorIs(t, err, bad)
	assert.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6"}, used, "the cells before it are written")
	assert.LessOrEqual(t, len(filled), 10, "little is started past the error: %v", filled)

	useErr := errors.New("junit.xml: no space left on device")
	err = eachCellInOrder(cells, 2, func(c Cell) (Cell, error) { return c, nil }, func(c Cell) error {
		if c.Cell == "3" {
			return useErr
		}
		return nil
	})
	require.ErrorIs(t, err, useErr)
}
