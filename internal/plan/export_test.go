package plan

// BigPlan lets the external test package (which may import wgconf, and so
// cannot be package plan) build the same generated plans as bench_test.go.
var BigPlan = bigPlan
