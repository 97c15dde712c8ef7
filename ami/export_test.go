package ami

// BenchBlock exposes the benchmark stream generator to the external test package.
var BenchBlock = benchBlock
