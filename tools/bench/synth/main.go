// Command synth writes the inputs of tools/bench/gpu_device.sh: a ViT-B/16
// checkpoint of deterministic random weights (vittest.SplitmixTensors, timm
// names) and a folder dataset of synthetic 224x224 JPEG images.
//
//	go run ./tools/bench/synth -out DIR -images 4550
//
// writes DIR/vit-b16-splitmix.safetensors and DIR/images/classNN/imgNNNNN.jpg
// (10 classes, images spread evenly), and prints the checkpoint's path last.
// -small writes a small model of the same layout instead (dry runs). Images are smooth colour fields plus
// noise, seeded by their index, so every run writes the same files.
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/vittest"
)

func main() {
	out := flag.String("out", "", "output folder")
	n := flag.Int("images", 4550, "synthetic images")
	classes := flag.Int("classes", 10, "class folders the images are spread over")
	size := flag.Int("size", 224, "image width and height")
	small := flag.Bool("small", false, "a small model of the same layout (patch 32, dim 64, depth 2) for dry runs on a CPU adapter")
	flag.Parse()
	if *out == "" || *n < 1 || *classes < 1 || *size < 1 {
		fmt.Fprintln(os.Stderr, "usage: synth -out DIR [-images 4550] [-classes 10] [-size 224]")
		os.Exit(2)
	}
	cfg := vittest.B16
	if *small {
		cfg.PatchSize, cfg.Dim, cfg.Depth, cfg.Heads, cfg.MLPDim = 32, 64, 2, 1, 128
	}
	cfg.ImageSize = *size
	if err := run(*out, cfg, *n, *classes); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
}

func run(out string, cfg vit.Config, n, classes int) error {
	size := cfg.ImageSize
	model := filepath.Join(out, modelName(cfg))
	if _, err := os.Stat(model); err != nil {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		data, err := checkpoint.EncodeSafetensors(vittest.SplitmixTensors(cfg), nil)
		if err != nil {
			return err
		}
		tmp := model + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, model); err != nil {
			return err
		}
	}
	for c := range classes {
		if err := os.MkdirAll(filepath.Join(out, "images", fmt.Sprintf("class%02d", c)), 0o755); err != nil {
			return err
		}
	}
	jobs := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				path := filepath.Join(out, "images", fmt.Sprintf("class%02d", i%classes), fmt.Sprintf("img%05d.jpg", i))
				if err := writeImage(path, i, size); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Printf("synth: %d images of %dx%d in %d classes under %s; model:\n%s\n", n, size, size, classes, filepath.Join(out, "images"), model)
	return nil
}

// modelName names the checkpoint by its shape, so a small dry-run model and
// B/16 never share a file.
func modelName(c vit.Config) string {
	if c == vittest.B16 {
		return "vit-b16-splitmix.safetensors"
	}
	return fmt.Sprintf("vit-%dpx-p%d-d%d-l%d-splitmix.safetensors", c.ImageSize, c.PatchSize, c.Dim, c.Depth)
}

// writeImage writes image i: three low-frequency waves per channel and
// uniform noise, as JPEG (quality 90), unless the file exists.
func writeImage(path string, i, size int) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(i), 224))
	var fx, fy, ph [3]float64
	for c := range 3 {
		fx[c], fy[c], ph[c] = rng.Float64()*0.1, rng.Float64()*0.1, rng.Float64()*2*math.Pi
	}
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			var v [3]uint8
			for c := range 3 {
				s := 127 + 90*math.Sin(fx[c]*float64(x)+fy[c]*float64(y)+ph[c]) + 30*(rng.Float64()-0.5)
				v[c] = uint8(max(0, min(255, s)))
			}
			img.Set(x, y, color.RGBA{v[0], v[1], v[2], 255})
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
