// Package artifacts is the evidence of an attempt: state snapshots, the
// unified log over the attempt's window, the sysdiagnose, the manifest
// that lists them with their sha256, and triage — the signatures of known
// failures found in what was collected. It never decides a verdict.
package artifacts

import "time"

// Unclassified is the finding of a failure that matched no signature.
const Unclassified = "unclassified"

// Triage is what the signatures made of a failing attempt's evidence.
type Triage struct {
	// Finding is the first signature of the chain that matched (the
	// verdict's explanation), or Unclassified.
	Finding string `json:"finding"`
	// Labels are every signature that matched. Labels[0] is the finding
	// (a label named Unclassified when nothing explains the failure); the
	// others follow in the order their first evidence line appeared.
	Labels []Label `json:"labels"`
}

// Label is one matched signature with the lines that show it.
type Label struct {
	Signature string     `json:"signature"` // catalog id
	Meaning   string     `json:"meaning"`
	Report    string     `json:"report,omitempty"` // field report it comes from
	Evidence  []Evidence `json:"evidence"`
}

// Evidence is one line of collected evidence.
type Evidence struct {
	Time    time.Time `json:"time,omitzero"`
	Process string    `json:"process,omitempty"`
	Message string    `json:"message"`
	Source  string    `json:"source"` // file relative to the attempt folder
}

// Missing is evidence that could not be collected, and why.
type Missing struct {
	What   string `json:"what"` // "sysdiagnose", "logs", "state/after/launchd"
	Reason string `json:"reason"`
}
