package userapi

import (
	"strconv"
	"strings"
)

// Batched key reads and claims name many users or devices in one query.
// The lists are written as placeholders ($N), the same text for SQLite and
// PostgreSQL, and padded to a few fixed sizes (repeating the last value,
// harmless in an IN list) so that each query has few distinct texts, each
// prepared once.

// inListSizes are the sizes a list is padded to; longer lists are cut
// into chunks of the largest.
var inListSizes = []int{1, 8, 64, 256, 1024}

// maxInList is the longest list one query takes.
const maxInList = 1024

// paddedSize is the list size that holds n values.
func paddedSize(n int) int {
	for _, s := range inListSizes {
		if n <= s {
			return s
		}
	}
	return maxInList
}

// inList is "$from, $from+1, ..." for size placeholders.
func inList(from, size int) string {
	var b strings.Builder
	for i := range size {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// tupleList is "($from, ..., $from+width-1), (...)" for size tuples of
// width values: the rows of a VALUES list.
func tupleList(from, width, size int) string {
	var b strings.Builder
	for i := range size {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		b.WriteString(inList(from+i*width, width))
		b.WriteByte(')')
	}
	return b.String()
}

// chunks calls fn with vals cut into lists of at most maxInList, each
// padded to its size class; fn gets the padded arguments and their count.
func chunks[T any](vals []T, fn func(padded []T) error) error {
	for start := 0; start < len(vals); start += maxInList {
		chunk := vals[start:min(start+maxInList, len(vals))]
		padded := make([]T, paddedSize(len(chunk)))
		n := copy(padded, chunk)
		for i := n; i < len(padded); i++ {
			padded[i] = chunk[n-1]
		}
		if err := fn(padded); err != nil {
			return err
		}
	}
	return nil
}

// stringArgs turns strings into query arguments.
func stringArgs(vals []string) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = v
	}
	return out
}
