// Package buffer is the pipeline's durable on-disk queue: append-only
// segment files of checksummed records, group commit (one fdatasync covers
// every append that arrived while the previous one ran, and Append returns
// only once its records are on disk), recovery that truncates a torn tail,
// skips damaged records (keeping a copy of their bytes) without losing the
// intact ones around them, and replays what Elasticsearch has not
// acknowledged, a size limit that pushes back instead of growing, and
// deletion of a segment once every record in it is acknowledged.
//
// A memory-only mode keeps the same format in memory; it loses everything
// on a crash and exists for benchmarks.
package buffer
