package main

import (
	"fmt"
	"io"
	"os"

	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/probe"
)

func init() {
	register("probe", "per-token linear (ridge) probes of every block and site, beside the class projection", runProbe)
}

func runProbe(args []string, stdout io.Writer) error {
	fs := newFlags("probe", "")
	var rf runFlags
	rf.register(fs)
	sites := fs.String("sites", "hs,attn,mlp", "sites to probe at every block")
	alpha := fs.Float64("alpha", 1, "ridge penalty (the paper: 1)")
	trainRoot := fs.String("train-root", "", "root of the training dataset (default: -root)")
	trainPartition := fs.String("train-partition", "test", "ImageNet-S partition of the training images (the paper: test)")
	trainSplit := fs.String("train-split", "train", "Fashion-MNIST split of the training images")
	trainPerClass := fs.Int("train-per-class", 10, "training images per class (the paper: 10; -1: all)")
	memGB := fs.Float64("memory-gb", 2, "features held at once; more (block, site) pairs per pass over the data")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	ss, err := parseSites(*sites)
	if err != nil {
		return err
	}
	root := *trainRoot
	if root == "" {
		root = rf.root
	}
	train, err := dataset.Open(rf.data, root, dataset.Options{Partition: *trainPartition, PerClass: *trainPerClass, FMNISTSplit: *trainSplit})
	if err != nil {
		return err
	}
	if root, err = resolveRoot(rf.data, root); err != nil {
		return err
	}
	spec := probe.Spec{Sites: ss, Alpha: *alpha, MemoryBytes: int64(*memGB * (1 << 30)),
		Train: fmt.Sprintf("%s root=%s partition=%s split=%s per-class=%d (%d images, list sha256 %s)",
			rf.data, root, *trainPartition, *trainSplit, *trainPerClass, train.Len(), dataset.Fingerprint(train))}
	o, err := rf.openCPUInputs("probe", nil, "", os.Stderr)
	if err != nil {
		return err
	}
	if o.numShards > 1 {
		return fmt.Errorf("probe runs cannot be sharded (--shard): every probe needs all training images")
	}
	r := &probe.Runner{Bundle: o.bundle, Train: train, Test: o.data, Spec: spec, Log: os.Stderr}
	if err := r.Validate(); err != nil {
		return err
	}
	if err := o.create("probe", spec.Params(), spec.Tables(), append([]string{"probe"}, args...), "cpu", os.Stderr); err != nil {
		return err
	}
	defer o.close()
	r.Out = o.out
	fmt.Fprintf(os.Stderr, "probe: training on %d images of %s\n", train.Len(), train.Name())
	if !rf.quiet {
		bars := map[string]func(int, int){}
		r.Progress = func(stage string, done, total int) {
			if bars[stage] == nil {
				bars[stage] = newProgress(os.Stderr, "probe "+stage)
			}
			bars[stage](done, total)
		}
	}
	st, err := r.Run()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "probe: %d training and %d test images, %d (block, site) groups, %d skipped, %s -> %s\n",
		st.Train, st.Test, st.Groups, st.Skipped, st.Elapsed.Round(1e9), o.out.Dir())
	rep, err := probe.Summarize(o.out.Dir())
	if err != nil {
		return err
	}
	rep.WriteText(stdout)
	return experiment.WriteJSON(o.out.Dir(), "summary.json", rep)
}
