package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

func TestShardFromScheduler(t *testing.T) {
	for _, c := range []struct {
		env      map[string]string
		shards   int
		want     string // "i/n", or "" for an error
		wantText string // in the description, or in the error
	}{
		{map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, 0, "2/3", "SLURM_ARRAY_TASK_COUNT"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6"}, 0, "1/3", "MIN/MAX"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "2", "SLURM_ARRAY_TASK_STEP": "1"}, 3, "0/3", "SLURM_ARRAY_TASK_ID"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "4"}, 0, "", "spans 5 tasks"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "2"}, 0, "", "step 2"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "2"}, 0, "", "neither SLURM_ARRAY_TASK_COUNT"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3"}, 0, "", "index 3 is not in 0..2"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}, 4, "", "--shards 4 but the SLURM array has 3 tasks"},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "3"}, 0, "", `SLURM_ARRAY_TASK_ID="x" is not a whole number`},
		{map[string]string{"JOB_COMPLETION_INDEX": "1"}, 3, "1/3", "--shards"},
		{map[string]string{"JOB_COMPLETION_INDEX": "2", "VITLENS_SHARDS": "3"}, 0, "2/3", "VITLENS_SHARDS"},
		{map[string]string{"JOB_COMPLETION_INDEX": "2", "VITLENS_SHARDS": "3"}, 4, "", "--shards 4 but VITLENS_SHARDS=3"},
		{map[string]string{"JOB_COMPLETION_INDEX": "0"}, 0, "", "give --shards N or set VITLENS_SHARDS"},
		{map[string]string{"JOB_COMPLETION_INDEX": "0", "SLURM_ARRAY_TASK_ID": "0"}, 3, "", "both"},
		{map[string]string{}, 0, "", "no scheduler index found"},
	} {
		got, from, err := shardFromScheduler(func(k string) string { return c.env[k] }, c.shards)
		text := from
		if err != nil {
			text = err.Error()
		}
		if got != c.want || !strings.Contains(text, c.wantText) || (c.want == "") != (err != nil) {
			t.Errorf("%v --shards %d: got %q (%s), want %q mentioning %q", c.env, c.shards, got, text, c.want, c.wantText)
		}
	}
}

// Three shards whose index comes from each scheduler's variables merge to
// exactly the rows of the unsharded run; the manifest says where each shard
// index came from.
func TestShardAutoMergesToWholeRun(t *testing.T) {
	root := vittest.ImageFolder(t, 2, 20, 18, 7)
	tmp := t.TempDir()
	whole := filepath.Join(tmp, "whole")
	mustRun(t, extractArgs(root, whole, "--format", "csv")...)
	want, err := os.ReadFile(filepath.Join(whole, "ranks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	shardedRuns(t, root, want, func(sched string, i int) string {
		if i < 0 {
			return filepath.Join(tmp, sched, "merged")
		}
		return filepath.Join(tmp, sched, strconv.Itoa(i))
	}, func(dir, name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
	_, stderr, code := runCLI(t, extractArgs(root, filepath.Join(tmp, "x"), "--shards", "3")...)
	if code != 1 || !strings.Contains(stderr, "--shards goes with --shard auto") {
		t.Errorf("--shards without --shard auto: exit %d, %q", code, stderr)
	}
}

// shardedRuns runs extract as 3 shards with each scheduler's variables
// (--shard auto), merges them and checks that the merged ranks.csv is the
// whole run's, byte for byte. outDir names a shard's folder; read reads a
// file of a folder.
func shardedRuns(t *testing.T, root string, want []byte, outDir func(sched string, i int) string, read func(dir, name string) []byte) {
	t.Helper()
	for _, sched := range []struct {
		name string
		env  func(i int) map[string]string
		more []string
	}{
		{"slurm", func(i int) map[string]string {
			return map[string]string{"SLURM_ARRAY_TASK_ID": string(rune('4' + i)), "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6"}
		}, nil},
		{"k8s", func(i int) map[string]string {
			return map[string]string{"JOB_COMPLETION_INDEX": string(rune('0' + i))}
		}, []string{"--shards", "3"}},
	} {
		var shards []string
		for i := range 3 {
			for _, k := range []string{"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX", "VITLENS_SHARDS"} {
				t.Setenv(k, "")
			}
			for k, v := range sched.env(i) {
				t.Setenv(k, v)
			}
			out := outDir(sched.name, i)
			mustRun(t, extractArgs(root, out, append([]string{"--format", "csv", "--shard", "auto"}, sched.more...)...)...)
			var m results.Manifest
			if err := json.Unmarshal(read(out, "manifest.json"), &m); err != nil {
				t.Fatal(err)
			}
			if m.Shard != string(rune('0'+i))+"/3" || m.ShardFrom == "" {
				t.Errorf("%s shard %d: manifest shard %q from %q", sched.name, i, m.Shard, m.ShardFrom)
			}
			shards = append(shards, out)
		}
		merged := outDir(sched.name, -1)
		mustRun(t, append([]string{"merge", merged}, shards...)...)
		if got := read(merged, "ranks.csv"); !bytes.Equal(got, want) {
			t.Errorf("%s: the merged shards' ranks.csv (%d bytes) differs from the whole run's (%d bytes)", sched.name, len(got), len(want))
		}
		if err := results.Verify(merged); err != nil {
			t.Errorf("%s: merged folder: %v", sched.name, err)
		}
	}
}
