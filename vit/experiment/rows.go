package experiment

import (
	"strings"

	"vitlens/vit/dataset"
)

// Tables of a results folder. Columns are named by the parquet tags; the
// CSV format uses the same names. block and token are 0-based; token 0 is
// [CLS] when the model has one, and tokens keep their original index when a
// perturbation dropped others.

// RankRow is one (image, block, site, token) readout of the lens: table "ranks".
type RankRow struct {
	Image       int32   `parquet:"image"`
	Label       int32   `parquet:"label"`
	Block       int32   `parquet:"block"`
	Site        string  `parquet:"site,dict"`
	Token       int32   `parquet:"token"`
	PatchLabel  int32   `parquet:"patch_label"` // 1 class-labelled, 0 context, -1 unknown or [CLS]
	Rank        int32   `parquet:"rank"`
	Top1        int32   `parquet:"top1"`
	Top2        int32   `parquet:"top2"`
	Top3        int32   `parquet:"top3"`
	Top4        int32   `parquet:"top4"`
	Top5        int32   `parquet:"top5"`
	TargetLogit float32 `parquet:"target_logit"`
	// Entropy of the lens distribution and KL(last block's hs ‖ it) of the
	// same token, in nats.
	Entropy float32 `parquet:"entropy"`
	KLLast  float32 `parquet:"kl_last"`
}

// ImageRow is one image's outcome: table "images".
type ImageRow struct {
	Image   int32  `parquet:"image"`
	ID      string `parquet:"id"`
	Label   int32  `parquet:"label"`
	Pred    int32  `parquet:"pred"`
	Correct bool   `parquet:"correct"`
	Tokens  int32  `parquet:"tokens"` // sequence length the model saw
}

// SkipRow records an image left out and why: table "skipped".
type SkipRow struct {
	Image  int32  `parquet:"image"`
	ID     string `parquet:"id"`
	Reason string `parquet:"reason"`
}

// IndexSkips are the rows of the skipped table for what the dataset left
// out while indexing (dataset.Skipped: non-image files, empty class folders,
// excluded categories): image -1, since they never had an index, and the
// path as ID. Runners write them with chunk 0, so a run lists them once and
// merged shards too.
func IndexSkips(ds dataset.Dataset) []SkipRow {
	var rows []SkipRow
	for _, s := range dataset.Skipped(ds) {
		path, reason := s, "left out while indexing the dataset"
		if i := strings.LastIndex(s, ": "); i >= 0 {
			path, reason = s[:i], s[i+2:]
		}
		rows = append(rows, SkipRow{Image: -1, ID: path, Reason: reason})
	}
	return rows
}

// WithIndexSkips puts the dataset's IndexSkips before chunk k's own skipped
// rows when k is chunk 0.
func WithIndexSkips(ds dataset.Dataset, k int, skips []SkipRow) []SkipRow {
	if k != 0 {
		return skips
	}
	return append(IndexSkips(ds), skips...)
}

// MemoryRow is one (image, block, token) key-value memory readout: table
// "memories".
type MemoryRow struct {
	Image       int32  `parquet:"image"`
	Label       int32  `parquet:"label"`
	Block       int32  `parquet:"block"`
	Layer       string `parquet:"layer,dict"`
	Token       int32  `parquet:"token"`
	Correct     bool   `parquet:"correct"`
	Agree       bool   `parquet:"agree"`        // a top memory of the token is a top memory of the label
	AgreeRandom bool   `parquet:"agree_random"` // the same for the seeded random class of the concept
	Composes    bool   `parquet:"composes"`     // a top memory promotes the sublayer's top-1 class
	Mem1        int32  `parquet:"mem1"`
	Mem2        int32  `parquet:"mem2"`
	Mem3        int32  `parquet:"mem3"`
	Mem4        int32  `parquet:"mem4"`
	Mem5        int32  `parquet:"mem5"`
}

// ClassValueRow is the class-value agreement of one class at one block:
// table "class_value" (weights only, no images).
type ClassValueRow struct {
	Block        int32   `parquet:"block"`
	Layer        string  `parquet:"layer,dict"`
	Class        int32   `parquet:"class"`
	MaxCos       float64 `parquet:"max_cos"`
	RandomMaxCos float64 `parquet:"random_max_cos"`
}

// ValueClassRow is one memory of one block: the classes its value vector
// promotes most, the top of its column of P = E·W_out (no LayerNorm, no
// bias, as the original's interpretable value vectors): table
// "value_classes" (weights only, no images).
type ValueClassRow struct {
	Block  int32   `parquet:"block"`
	Layer  string  `parquet:"layer,dict"`
	Memory int32   `parquet:"memory"`
	Class1 int32   `parquet:"class1"`
	Class2 int32   `parquet:"class2"`
	Class3 int32   `parquet:"class3"`
	Class4 int32   `parquet:"class4"`
	Class5 int32   `parquet:"class5"`
	Logit1 float32 `parquet:"logit1"` // P[class1, memory]
}
