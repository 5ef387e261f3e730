// Package bench holds the performance benchmarks of alwrity-billing. Each
// measures the service beside a baseline in the same run (the raw batched
// INSERT ceiling of the same database), so ratios mean something on shared,
// noisy machines. Results and the commands that produced them are in
// docs/BENCHMARKS.md.
package bench
