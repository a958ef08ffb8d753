package lab

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/steps"
)

// approvalConfig is validConfig with an approval axis, an MDM-enrolled
// image and the approve step given.
func approvalConfig(image, mdmImage, approve string) string {
	src := strings.Replace(validConfig, `images:
  macos-15.3:
    sim: {product_version: "15.3", build: 24D60}
`, `images:
  macos-15.3:
    sim: {product_version: "15.3", build: 24D60}
  macos-15.3-mdm:
`+mdmImage, 1)
	src = strings.Replace(src, "matrix:\n  axes:\n", "matrix:\n"+image+"  axes:\n", 1)
	src = strings.Replace(src, "    vpn: [running, stopped]\n", "    vpn: [running, stopped]\n    approval: [approved, pending]\n", 1)
	return strings.Replace(src, "  - upgrade: \"{{.To}}\"\n", "  - upgrade: \"{{.To}}\"\n"+approve, 1)
}

const (
	mdmGolden = "    sim:\n      product_version: \"15.3\"\n      build: 24D60\n      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}\n"
	perCell   = "  image: '{{.Axis.macos}}{{if eq .Axis.approval \"approved\"}}-mdm{{end}}'\n"
)

func TestMatrixImageChoosesTheGoldenPerCell(t *testing.T) {
	src := approvalConfig(perCell, mdmGolden, "  - approve: mdm\n    when: {approval: approved}\n  - approve: ui\n    when: {approval: pending}\n")
	l, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.NoError(t, err)
	assert.Empty(t, l.Warnings)
	for approval, want := range map[string]string{"approved": "macos-15.3-mdm", "pending": "macos-15.3"} {
		got, err := l.Config.CellImage(map[string]string{"macos": "macos-15.3", "approval": approval})
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
}

func TestMatrixImageNamesAnUndefinedImage(t *testing.T) {
	src := approvalConfig("  image: '{{.Axis.macos}}-{{.Axis.approval}}'\n", mdmGolden, "")
	_, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.Error(t, err)
	assert.Regexp(t, `config\.yaml:\d+:\d+: matrix\.image: cell .*approval=approved runs on image "macos-15.3-approved", which is not defined under images`, err.Error())

	src = approvalConfig("  image: '{{.Axis.os}}'\n", mdmGolden, "")
	_, err = Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.Error(t, err)
	assert.Regexp(t, `config\.yaml:\d+:\d+: matrix\.image: .*os`, err.Error(), "an axis that does not exist")
}

func TestMDMApprovalNeedsAPolicyOnItsImage(t *testing.T) {
	// Both cells on the plain golden: mdm there can approve nothing.
	src := approvalConfig("", mdmGolden, "  - approve: mdm\n    when: {approval: approved}\n")
	_, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.Error(t, err)
	assert.Regexp(t, `config\.yaml:\d+:\d+: scenario\[3\]\.approve: approve: mdm runs on image macos-15.3, whose golden has no system extension policy allowing team ABCDE12345`, err.Error())

	// A policy for another team does not allow this extension.
	other := strings.Replace(mdmGolden, "ABCDE12345", "ZZZZZ99999", 1)
	src = approvalConfig(perCell, other, "  - approve: mdm\n    when: {approval: approved}\n")
	_, err = Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "image macos-15.3-mdm, whose golden has no system extension policy")
}

func TestPromptIsADeprecatedAliasOfUI(t *testing.T) {
	src := approvalConfig("", mdmGolden, "  - approve:\n      strategy: prompt\n      run: tell application \"System Events\" to click button \"Allow\"\n    when: {approval: pending}\n")
	l, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.NoError(t, err)
	require.Len(t, l.Warnings, 1)
	assert.Regexp(t, `config\.yaml:\d+:\d+: scenario\[3\]\.approve: strategy prompt is deprecated: it is now ui`, l.Warnings[0])
	assert.Contains(t, l.Warnings[0], "its run is ignored")
	sc, err := l.Config.CellSteps(map[string]string{"macos": "macos-15.3", "path": "1->3", "vpn": "stopped", "approval": "pending"})
	require.NoError(t, err)
	var approve steps.Approve
	for _, s := range sc {
		if a, ok := s.(steps.Approve); ok {
			approve = a
		}
	}
	assert.Equal(t, steps.Approve{Label: "4 approve", Strategy: "ui"}, approve)
}

func TestApproveKeysAreChecked(t *testing.T) {
	for step, want := range map[string]string{
		"  - approve: {strategy: ui, run: x}\n":                 "strategy ui runs its built-in System Settings scripts and takes no run",
		"  - approve: {strategy: command}\n":                    "strategy command needs run",
		"  - approve: {strategy: ui, what: vpn}\n":              `what: "vpn" is not one of extension, vpn-configuration`,
		"  - approve: {strategy: command, run: x, what: vpn}\n": "only strategy ui answers",
		"  - approve: click\n":                                  `strategy "click" is not one of mdm, ui, command, none`,
	} {
		_, err := Load(LoadOptions{File: writeConfig(t, approvalConfig("", mdmGolden, step)), LookupEnv: noEnv})
		require.Error(t, err, step)
		assert.Contains(t, err.Error(), want, step)
		assert.Regexp(t, `config\.yaml:\d+:\d+: scenario\[3\]\.approve`, err.Error(), step)
	}
	_, err := Load(LoadOptions{File: writeConfig(t, approvalConfig("", mdmGolden, "  - approve: {strategy: ui, what: vpn-configuration}\n")), LookupEnv: noEnv})
	require.NoError(t, err)
}
