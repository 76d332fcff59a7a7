package publisher

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpreload/mcpreload/events"
)

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeOutcome prints a saga's outcome: result, reason and a node table.
func writeOutcome(w io.Writer, o *events.Outcome, took time.Duration) {
	fmt.Fprintf(w, "result: %s (saga %s, module %s, %s, took %s)\n", o.Result, o.Saga, o.Module, ShortDigest(o.Digest), took.Round(time.Millisecond))
	if o.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", o.Reason)
	}
	switch o.Result {
	case events.ResultAborted:
		fmt.Fprintln(w, "nothing was committed: every node keeps serving its previous version")
	case events.ResultRolledBack:
		fmt.Fprintf(w, "the commit was undone: the desired version is back to %s\n", dash(ShortDigest(o.PreviousDigest)))
	case events.ResultFailed:
		fmt.Fprintln(w, "some named nodes did not commit; the others serve the new version")
	}
	if len(o.Nodes) == 0 {
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "NODE\tSTATE\tDETAIL")
	for _, n := range o.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Node, n.State, failure(n.Stage, n.Code, n.Message))
	}
	_ = tw.Flush()
}

// writeStatus prints a StatusReport: one table per module, then a verdict.
func writeStatus(w io.Writer, rep *StatusReport) {
	if len(rep.LiveNodes) == 0 {
		fmt.Fprintln(w, "no live node (start nodes with --nats-url, or check --prefix)")
	}
	var bad []string
	for _, m := range rep.Modules {
		head := fmt.Sprintf("%s: desired %s", m.Module, dash(ShortDigest(m.Desired)))
		if m.Saga != "" {
			head += fmt.Sprintf(" (saga %s, %s)", m.Saga, m.Updated.UTC().Format(time.RFC3339))
		}
		if m.InProgress != "" {
			head += fmt.Sprintf("; saga %s in progress", m.InProgress)
		}
		fmt.Fprintln(w, head)
		if len(m.Nodes) == 0 {
			fmt.Fprintln(w, "  no live node serves or should serve it")
			continue
		}
		tw := table(w)
		fmt.Fprintln(tw, "  NODE\tSERVING\tVERSION\tDESIRED\tSTATE")
		for _, n := range m.Nodes {
			desired := dash(ShortDigest(n.Desired))
			if n.Pinned {
				desired += " (pin)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", n.Node, dash(ShortDigest(n.Serving)), dash(n.Version), desired, strings.ToUpper(n.State))
			switch n.State {
			case StateDrift:
				bad = append(bad, fmt.Sprintf("%s serves %s %s instead of %s", n.Node, m.Module, ShortDigest(n.Serving), ShortDigest(n.Desired)))
			case StateMissing:
				bad = append(bad, fmt.Sprintf("%s does not serve %s", n.Node, m.Module))
			}
		}
		_ = tw.Flush()
	}
	if rep.Consistent {
		fmt.Fprintf(w, "consistent: %d module(s), %d live node(s)\n", len(rep.Modules), len(rep.LiveNodes))
		return
	}
	fmt.Fprintf(w, "INCONSISTENT: %s\n", strings.Join(bad, "; "))
	fmt.Fprintln(w, "(nodes converge to the desired version on their own unless it fails to load there: see their logs, or reload/rollback)")
}

// writeHistory prints outcomes as a table, oldest first.
func writeHistory(w io.Writer, outs []events.Outcome) {
	if len(outs) == 0 {
		fmt.Fprintln(w, "no saga in the history")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "FINISHED\tSAGA\tMODULE\tDIGEST\tSTRATEGY\tRESULT\tREASON")
	for _, o := range outs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.FinishedAt.UTC().Format(time.RFC3339), o.Saga, o.Module,
			ShortDigest(o.Digest), o.Strategy, o.Result, o.Reason)
	}
	_ = tw.Flush()
}

// writeNodes prints the live nodes as a table.
func writeNodes(w io.Writer, nodes []NodeInfo, now time.Time) {
	if len(nodes) == 0 {
		fmt.Fprintln(w, "no live node (start nodes with --nats-url, or check --prefix)")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "NODE\tHEARTBEAT\tUP\tMCP\tMODULES")
	for _, n := range nodes {
		mods := make([]string, len(n.Modules))
		for i, m := range n.Modules {
			mods[i] = fmt.Sprintf("%s %s (%s)", m.Module, dash(m.Version), ShortDigest(m.Digest))
		}
		up := "-"
		if !n.Started.IsZero() {
			up = now.Sub(n.Started).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s ago\t%s\t%s\t%s\n", n.Node, n.HeartbeatAge.Round(100*time.Millisecond), up, dash(n.MCP), dash(strings.Join(mods, ", ")))
	}
	_ = tw.Flush()
}
