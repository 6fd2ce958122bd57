package plan

import (
	"fmt"
	"os"
)

// Load reads and validates the plan file at path. A missing file is
// returned as an error wrapping fs.ErrNotExist so callers can suggest
// `lanlink init`; an invalid plan returns Problems.
func Load(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data; filename is used only in error messages. The error
// is always Problems, listing every problem found, sorted by line.
func Parse(filename string, data []byte) (*Plan, error) {
	d, probs := readDoc(filename, data)
	if probs != nil {
		return nil, probs
	}
	p, probs := check(filename, d)
	if probs != nil {
		return nil, probs
	}
	return p, nil
}
