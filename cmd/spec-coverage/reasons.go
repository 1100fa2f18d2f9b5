package main

import "github.com/chappe-matrix/chappe/internal/specschema"

// Why an operation is not implemented yet, for the table's reason column:
// the issue (or the decision) that covers it. Kept by hand; an operation
// with no entry shows an empty reason. Operation IDs override files.
var (
	reasonByOperation = map[string]string{
		"refresh":                           "refresh tokens issue",
		"getWellknownPolicy":                "operations issue (discovery files)",
		"requestTokenToResetPasswordEmail":  "Tchap issue (3PIDs)",
		"requestTokenToResetPasswordMSISDN": "Tchap issue (3PIDs)",
		"requestTokenToRegisterEmail":       "Tchap issue (3PIDs)",
		"requestTokenToRegisterMSISDN":      "Tchap issue (3PIDs)",
		"queryInfo":                         "profile and directory only: the spec defines no other query type",
		"askPolicyServerToSign":             "policy servers are not supported",
	}
	reasonByFile = map[string]string{
		"keys.yaml":                   "E2EE issue",
		"cross_signing.yaml":          "E2EE issue",
		"key_backup.yaml":             "E2EE issue",
		"to_device.yaml":              "E2EE issue",
		"content-repo.yaml":           "media issue",
		"authed-content-repo.yaml":    "media issue",
		"typing.yaml":                 "sync issue (ephemeral events)",
		"receipts.yaml":               "sync issue (ephemeral events)",
		"read_markers.yaml":           "sync issue (ephemeral events)",
		"presence.yaml":               "sync issue (ephemeral events)",
		"filter.yaml":                 "sync issue",
		"old_sync.yaml":               "sync issue",
		"notifications.yaml":          "push issue",
		"pusher.yaml":                 "push issue",
		"pushrules.yaml":              "push issue",
		"administrative_contact.yaml": "Tchap issue (3PIDs)",
		"third_party_membership.yaml": "Tchap issue (3PID invites)",
		"knocking.yaml":               "federation issue (knocks over federation)",
		"space_hierarchy.yaml":        "federation issue (remote rooms)",
		"sso_login_redirect.yaml":     "Tchap issue (SSO)",
		"oauth_server_metadata.yaml":  "Tchap issue (SSO)",
		"third_party_invite.yaml":     "Tchap issue (3PID invites)",
	}
)

// Operations that share their method and path with another one, so that
// the route of the other makes them look implemented: they are counted as
// not implemented, with this reason.
var sharedRouteGaps = map[string]string{
	"inviteBy3PID": "Tchap issue (3PID invites; the invite route serves user IDs only)",
	"getEvents":    "not served: the deprecated global event stream; GET /events answers the peeking form (peekEvents, room_id required) only",
}

func gapReason(op specschema.Operation) string {
	if r, ok := sharedRouteGaps[op.OperationID]; ok {
		return r
	}
	if r, ok := reasonByOperation[op.OperationID]; ok {
		return r
	}
	return reasonByFile[op.File]
}
