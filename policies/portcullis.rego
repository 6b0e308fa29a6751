# The default Portcullis policy: each group may use a set of models.
#
# The gateway evaluates data.portcullis.decision for every call, with the
# input documented in docs/policy.md (identity, request, time). Edit the
# table below, run `portcullis policy test policies`, and restart.
package portcullis

# group_models maps a group to the model names its members may call.
# Patterns use glob syntax: "*" matches any run of characters (dots included).
group_models := {
	"demo": ["demo", "demo-*"],
	"engineering": ["*"],
	"analysts": ["gpt-4o-mini", "demo"],
}

# allowed_models is every pattern the caller's groups grant.
allowed_models contains pattern if {
	some group in input.identity.groups
	some pattern in group_models[group]
}

model_allowed if {
	some pattern in allowed_models
	glob.match(pattern, null, input.request.model)
}

default decision := {
	"allow": false,
	"reasons": ["no rule allowed this request"],
}

decision := {"allow": true, "reasons": []} if model_allowed

decision := {"allow": false, "reasons": [reason]} if {
	not model_allowed
	reason := sprintf("model %q is not allowed for groups %v", [input.request.model, input.identity.groups])
}
