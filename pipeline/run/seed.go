package run

import "hash/fnv"

// DeriveSeed returns the seed of item index at stage id of a job seeded with
// seed. It depends on nothing else, so results do not change with batch size,
// worker count, shard or processing order.
func DeriveSeed(seed uint64, stage string, index int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(stage))
	x := seed ^ h.Sum64()*0x9e3779b97f4a7c15 ^ uint64(index)*0xbf58476d1ce4e5b9
	// splitmix64 finaliser: neighbouring indices get unrelated seeds.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
