package main

import (
	"fmt"
	"strconv"
	"strings"
)

// shardFromScheduler resolves `--shard auto`: the shard index and count
// come from the scheduler that started this process, so one job script
// serves every task of a job array.
//
//   - SLURM job arrays: SLURM_ARRAY_TASK_ID, with the count from
//     SLURM_ARRAY_TASK_COUNT, or from SLURM_ARRAY_TASK_MIN/MAX when the count
//     is absent (the index is then counted from MIN). Arrays with a step
//     other than 1 (--array=0-9:2) are refused: their task ids are not
//     0..n-1 and shards would be skipped.
//   - Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX, with the count from
//     --shards N or VITLENS_SHARDS (set it in the Job's manifest to the Job's
//     completions).
//
// shards is --shards (0: not given). It returns "i/n" and a description of
// where they came from, for the manifest and the log.
func shardFromScheduler(getenv func(string) string, shards int) (shard string, from string, err error) {
	slurmID := getenv("SLURM_ARRAY_TASK_ID")
	k8sIndex := getenv("JOB_COMPLETION_INDEX")
	switch {
	case slurmID != "" && k8sIndex != "":
		return "", "", fmt.Errorf("--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; give --shard i/n")
	case slurmID != "":
		return slurmShard(getenv, slurmID, shards)
	case k8sIndex != "":
		return indexedJobShard(getenv, k8sIndex, shards)
	}
	return "", "", fmt.Errorf("--shard auto: no scheduler index found (SLURM_ARRAY_TASK_ID of a SLURM job array, or JOB_COMPLETION_INDEX of a Kubernetes Indexed Job); give --shard i/n")
}

func slurmShard(getenv func(string) string, idText string, shards int) (string, string, error) {
	id, err := envInt("SLURM_ARRAY_TASK_ID", idText)
	if err != nil {
		return "", "", err
	}
	if step := getenv("SLURM_ARRAY_TASK_STEP"); step != "" && strings.TrimSpace(step) != "1" {
		return "", "", fmt.Errorf("--shard auto: the SLURM array has step %s (SLURM_ARRAY_TASK_STEP); use --array=0-N with step 1, or give --shard i/n", step)
	}
	first, n := 0, 0
	minText, maxText, countText := getenv("SLURM_ARRAY_TASK_MIN"), getenv("SLURM_ARRAY_TASK_MAX"), getenv("SLURM_ARRAY_TASK_COUNT")
	from := "SLURM_ARRAY_TASK_ID"
	if minText != "" {
		if first, err = envInt("SLURM_ARRAY_TASK_MIN", minText); err != nil {
			return "", "", err
		}
	}
	if countText != "" {
		if n, err = envInt("SLURM_ARRAY_TASK_COUNT", countText); err != nil {
			return "", "", err
		}
		from += ", SLURM_ARRAY_TASK_COUNT"
	}
	if maxText != "" {
		if minText == "" {
			return "", "", fmt.Errorf("--shard auto: SLURM_ARRAY_TASK_MAX is set but SLURM_ARRAY_TASK_MIN is not; give --shard i/n")
		}
		last, err := envInt("SLURM_ARRAY_TASK_MAX", maxText)
		if err != nil {
			return "", "", err
		}
		if span := last - first + 1; n == 0 {
			n, from = span, from+", SLURM_ARRAY_TASK_MIN/MAX"
		} else if span != n {
			return "", "", fmt.Errorf("--shard auto: SLURM_ARRAY_TASK_COUNT=%d but MIN..MAX = %d..%d spans %d tasks (an array with gaps?); give --shard i/n", n, first, last, span)
		}
	}
	if n == 0 {
		return "", "", fmt.Errorf("--shard auto: SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN/MAX; give --shard i/n")
	}
	if shards != 0 && shards != n {
		return "", "", fmt.Errorf("--shard auto: --shards %d but the SLURM array has %d tasks", shards, n)
	}
	return checkedShard(id-first, n, from)
}

func indexedJobShard(getenv func(string) string, indexText string, shards int) (string, string, error) {
	i, err := envInt("JOB_COMPLETION_INDEX", indexText)
	if err != nil {
		return "", "", err
	}
	from := "JOB_COMPLETION_INDEX"
	n := shards
	if v := getenv("VITLENS_SHARDS"); v != "" {
		envN, err := envInt("VITLENS_SHARDS", v)
		if err != nil {
			return "", "", err
		}
		if n != 0 && n != envN {
			return "", "", fmt.Errorf("--shard auto: --shards %d but VITLENS_SHARDS=%d", n, envN)
		}
		if n == 0 {
			from += ", VITLENS_SHARDS"
		}
		n = envN
	}
	if n == 0 {
		return "", "", fmt.Errorf("--shard auto: a Kubernetes Indexed Job gives the index (JOB_COMPLETION_INDEX=%d) but not the count; give --shards N or set VITLENS_SHARDS to the Job's completions", i)
	}
	if shards != 0 {
		from += ", --shards"
	}
	return checkedShard(i, n, from)
}

func checkedShard(i, n int, from string) (string, string, error) {
	if n < 1 || i < 0 || i >= n {
		return "", "", fmt.Errorf("--shard auto: index %d is not in 0..%d (from %s)", i, n-1, from)
	}
	return fmt.Sprintf("%d/%d", i, n), from, nil
}

func envInt(name, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("--shard auto: %s=%q is not a whole number", name, v)
	}
	return n, nil
}
