package explain

import (
	"reflect"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// MapRecorded on the lens's own forward (lens.Request.Record, with the taps
// an analysis asks for) gives exactly Map's maps, which run a forward of
// their own: the app explains an analysed image without a second forward.
// A record that is not a whole forward of the whole image is refused.
func TestMapRecordedIsMap(t *testing.T) {
	for _, name := range goldenFixtures {
		t.Run(name, func(t *testing.T) {
			m, g := loadFixture(t, name)
			if !m.Config.ClassToken {
				t.Skip("no [CLS]: explained maps are refused (TestMapsMatchAutograd)")
			}
			inputs, targets := goldenInputs(t, g)
			cpu := lens.NewCPU(m)
			for i, in := range inputs {
				req := lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{-1}, Record: true,
					Taps: vit.Taps{AttnProbs: true, FC1: true, Heads: true}}
				res, err := cpu.Analyze([]*vit.Tensor{in}, req)
				if err != nil {
					t.Fatal(err)
				}
				rec := res[0].Activations
				if rec == nil {
					t.Fatal("the CPU backend kept no record")
				}
				for _, target := range []int{-1, targets[i]} {
					want, err := Map(m, in, target, Options{})
					if err != nil {
						t.Fatal(err)
					}
					got, err := MapRecorded(m, rec, target, Options{})
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("image %d, target %d: the maps from the lens's forward differ from Map's", i, target)
					}
				}
			}
			// Without Record the lens keeps nothing.
			res, err := cpu.Analyze(inputs[:1], lens.Request{Sites: []vit.Site{vit.SiteHS}, TopK: 5})
			if err != nil || res[0].Activations != nil {
				t.Fatalf("a lens run without Record kept activations (err %v)", err)
			}
			var dropped vit.Activations
			if _, err := m.Forward(inputs[0], vit.Options{Record: &dropped, Keep: []int{0, 1, 2}}); err != nil {
				t.Fatal(err)
			}
			for what, rec := range map[string]*vit.Activations{"nil": nil, "dropped tokens": &dropped,
				"no blocks": {Tokens: dropped.Tokens}} {
				if _, err := MapRecorded(m, rec, -1, Options{}); err == nil {
					t.Errorf("a record with %s was explained", what)
				}
			}
		})
	}
}
