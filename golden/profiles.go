package golden

import (
	"strings"
)

// parseEnrollment reads `profiles status -type enrollment`:
// "MDM enrollment: Yes (User Approved)" / "MDM enrollment: No"
// (usnistgov/macos_security issue 45).
func parseEnrollment(out string) (enrolled, userApproved bool) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "MDM enrollment" {
			continue
		}
		v = strings.TrimSpace(v)
		enrolled = strings.HasPrefix(v, "Yes")
		userApproved = enrolled && strings.Contains(v, "User Approved")
	}
	return enrolled, userApproved
}
