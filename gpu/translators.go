package gpu

import (
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// deviceTranslators are a tuned lens's W and c per (site, block), one
// storage buffer each.
type deviceTranslators struct {
	src *lens.Translators
	by  map[[2]int]translatorBufs // (site, block)
	all []*buf
}

type translatorBufs struct{ w, b *buf }

// at returns the buffers of site s at block b, or nil for the plain lens.
func (t *deviceTranslators) at(s vit.Site, b int) *translatorBufs {
	if t == nil {
		return nil
	}
	if tb, ok := t.by[[2]int{int(s), b}]; ok {
		return &tb
	}
	return nil
}

func (t *deviceTranslators) release() {
	if t == nil {
		return
	}
	for _, b := range t.all {
		b.b.Destroy()
		b.b.Release()
	}
	t.all = nil
}

// useTranslators makes tl the device's translators (nil: none), uploading
// them when they are not the ones already there. Plans recorded with other
// translators bind their buffers, so they are dropped first. Call with b.mu
// held.
func (b *Backend) useTranslators(tl *lens.Translators) error {
	if tl == nil || (b.translators != nil && b.translators.src == tl) {
		return nil
	}
	kept := b.plans[:0]
	for _, p := range b.plans {
		if p.key.lens != nil {
			b.collectPlan(p) // its batches may still read the translators
			p.release()
		} else {
			kept = append(kept, p)
		}
	}
	b.plans = kept
	b.translators.release()
	b.translators = nil
	c := b.model.Config
	if tl.Dim != c.Dim || tl.Depth != c.Depth {
		return fmt.Errorf("gpu: translators for a %d-wide, %d-block model; this one is %d wide with %d blocks", tl.Dim, tl.Depth, c.Dim, c.Depth)
	}
	dt := &deviceTranslators{src: tl, by: map[[2]int]translatorBufs{}}
	for _, s := range lens.TranslatorSites {
		for blk := range c.Depth {
			tr := tl.At(s, blk)
			if tr == nil {
				continue
			}
			name := fmt.Sprintf("translator.%s.%d", s, blk)
			w, err := uploadLinear(b.d, name+".weight", tr.W, c.Dim, c.Dim, false)
			if err != nil {
				dt.release()
				return err
			}
			dt.all = append(dt.all, w)
			bias, err := upload(b.d, name+".bias", f32bytes(tr.B), wgpu.BufferUsageStorage)
			if err != nil {
				dt.release()
				return err
			}
			dt.all = append(dt.all, bias)
			dt.by[[2]int{int(s), blk}] = translatorBufs{w, bias}
		}
	}
	b.translators = dt
	return nil
}
