package experiment

import (
	"time"

	"vitlens/vit/results"
)

// Stats summarises a run.
type Stats struct {
	Images, Skipped, ResumedChunks int
	Elapsed                        time.Duration // the chunks, not the finishing
	Finishing                      time.Duration // concatenating the chunks into the finished tables
}

// ChunkWork processes images [lo, hi) of the selection as chunk k: it
// writes the chunk's tables, commits the chunk, and says how many images it
// analysed and how many it skipped.
type ChunkWork func(k, lo, hi int) (images, skipped int, err error)

// RunChunks drives every batch experiment over a results folder. Chunk k
// covers images [k·size, (k+1)·size) of the selection; shard i of n owns the
// chunks with k % n == i, so shards of one run never write the same chunk and
// merge cleanly. Committed chunks are skipped (resume). progress, when set,
// hears done/total images of this shard, first with what earlier runs did.
// An unsharded run's tables are finished at the end; shards are finished by
// `vitlens merge`.
func RunChunks(out *results.Run, images, shard, numShards int, progress func(done, total int), work ChunkWork) (Stats, error) {
	var st Stats
	start := time.Now()
	size := out.Manifest().ChunkSize
	mine := shardChunks(chunkCount(images, size), shard, numShards)
	total := ShardImages(images, size, shard, numShards)
	done := 0
	for _, k := range mine {
		if out.ChunkDone(k) {
			st.ResumedChunks++
			done += min(size, images-k*size)
		}
	}
	report := func() {
		if progress != nil {
			progress(done, total)
		}
	}
	report()
	for _, k := range mine {
		if out.ChunkDone(k) {
			continue
		}
		lo, hi := chunkBounds(k, size, images)
		n, skipped, err := work(k, lo, hi)
		if err != nil {
			return st, err
		}
		st.Images += n
		st.Skipped += skipped
		done += hi - lo
		report()
	}
	st.Elapsed = time.Since(start)
	if numShards <= 1 {
		start = time.Now()
		err := out.Finish()
		st.Finishing = time.Since(start)
		return st, err
	}
	return st, nil
}

// PendingChunks lists, in the order RunChunks calls its work, the chunks of
// this shard not yet committed: what a caller that prepares chunks ahead of
// RunChunks (decoding images on other threads) must prepare.
func PendingChunks(out *results.Run, images, shard, numShards int) []int {
	var todo []int
	for _, k := range shardChunks(chunkCount(images, out.Manifest().ChunkSize), shard, numShards) {
		if !out.ChunkDone(k) {
			todo = append(todo, k)
		}
	}
	return todo
}

func chunkCount(images, size int) int { return (images + size - 1) / size }

// chunkBounds is chunk k's image range [lo, hi).
func chunkBounds(k, size, images int) (lo, hi int) { return k * size, min((k+1)*size, images) }

// shardChunks lists the chunks shard i of n owns: k with k % n == i.
func shardChunks(chunks, shard, n int) []int {
	var mine []int
	for k := 0; k < chunks; k++ {
		if k%max(n, 1) == shard {
			mine = append(mine, k)
		}
	}
	return mine
}

// ShardImages is the number of images shard i of n processes when images
// are cut into chunks of the given size (the manifest's Total of a shard).
func ShardImages(images, chunkSize, shard, n int) int {
	total := 0
	for _, k := range shardChunks(chunkCount(images, chunkSize), shard, n) {
		total += min(chunkSize, images-k*chunkSize)
	}
	return total
}
