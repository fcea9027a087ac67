package app

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/session"
)

// StateView exposes the analysis as JSON in a hidden element, with the
// page's status in data attributes: what the end-to-end tests (and anyone
// scripting the page) read.
type StateView struct {
	app.Compo
	Status, Busy, Error, Backend string
	// Engine says where the engine runs ("worker" or "page"); Progress is
	// the running analysis's advance; Notice the last notice.
	Engine, Progress, Notice string
	FirstMS                  float64
	Analysis                 *session.Analysis
	Compare                  *session.Analysis // the second model's, or nil

	// json and jsonCompare keep each analysis's JSON: the view redraws on
	// every progress message of the next analysis, and a large model's
	// summary takes a while to write.
	json, jsonCompare summaryCache
}

type summaryCache struct {
	of   *session.Analysis
	text string
}

func (s *StateView) summary(c *summaryCache, a *session.Analysis) string {
	// Through a tuned lens every render passes a new copy of the same
	// analysis (ThroughLens): the same runs are the same JSON.
	if o := c.of; o == nil || o.Seq != a.Seq || o.Model != a.Model || o.Base != a.Base || o.After != a.After {
		c.of, c.text = a, string(a.SummaryJSON())
	}
	return c.text
}

func (s *StateView) Render() app.UI {
	status := s.Status
	if s.Busy != "" && status == "ready" {
		status = "busy"
	}
	text, seq, model := "{}", 0, ""
	if s.Analysis != nil {
		text, seq, model = s.summary(&s.json, s.Analysis), s.Analysis.Seq, s.Analysis.Model.Name
	}
	compare := "{}"
	if s.Compare != nil {
		compare = s.summary(&s.jsonCompare, s.Compare)
	}
	return app.Div().Hidden(true).Body(app.Pre().ID("vl-state").
		DataSet("status", status).
		DataSet("seq", seq).
		DataSet("model", model).
		DataSet("backend", s.Backend).
		DataSet("error", s.Error).
		DataSet("engine", s.Engine).
		DataSet("progress", s.Progress).
		DataSet("notice", s.Notice).
		DataSet("first-ms", fmt.Sprintf("%.0f", s.FirstMS)).
		Text(text),
		app.Pre().ID("vl-state-compare").Text(compare))
}
