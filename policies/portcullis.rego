# The default Portcullis policy.
#
# The gateway asks data.portcullis.decision for every call and
# data.portcullis.models for GET /v1/models, with the input documented in
# docs/policy.md. The tables this policy reads are in tables/data.yaml.
# Edit either, run `portcullis policy test policies`, and the gateway
# reloads the folder on its own.
package portcullis

tables := data.tables

# --- The decision -----------------------------------------------------------

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {
	"allow": true,
	"reasons": [],
	"max_tokens": max_tokens,
	"budgets": budgets,
	"rate_limits": {
		"requests_per_minute": requests_per_minute,
		"tokens_per_minute": tokens_per_minute,
	},
	"tools": {"allowed": tables.tools.allowed, "on_violation": tool_violation},
	"log_content": false,
} if {
	count(deny) == 0
}

decision := {"allow": false, "reasons": sort(deny)} if count(deny) > 0

# --- Why a call is refused --------------------------------------------------

deny contains msg if {
	not is_service
	not may_use(input.request.model)
	msg := sprintf("model %q is not allowed for groups %v", [input.request.model, groups])
}

deny contains msg if {
	is_service
	not may_use(input.request.model)
	msg := sprintf("service accounts may only use %v, not %q", [tables.services.models, input.request.model])
}

# A credential narrowed to some models (an API key's or a minted token's
# `models`, seen as input.identity.claims.models) may use only those.
deny contains msg if {
	scope := input.identity.claims.models
	not input.request.model in scope
	msg := sprintf("this credential is limited to the models %v", [scope])
}

deny contains msg if {
	sensitive(input.request.model)
	not from_trusted_network
	msg := sprintf("model %q may only be called from the company network, not from %q", [input.request.model, input.request.client_ip])
}

deny contains msg if {
	some g in groups
	g in tables.working_hours.groups
	not working_hours
	msg := sprintf("group %s may only call on weekdays between %d:00 and %d:00 UTC", [g, tables.working_hours.from_hour, tables.working_hours.to_hour])
}

# --- Which models ------------------------------------------------------------

groups := object.get(input, ["identity", "groups"], [])

is_service if input.identity.type == "service"

# may_use says whether the caller may use a model: by group for people and
# API keys, by the stricter services table for service accounts.
may_use(model) if {
	not is_service
	some g in groups
	some pattern in tables.groups[g].models
	glob.match(pattern, null, model)
}

may_use(model) if {
	is_service
	some pattern in tables.services.models
	glob.match(pattern, null, model)
}

# models are what GET /v1/models shows: the configured models the caller
# may use.
models contains m if {
	some m in input.models
	may_use(m)
	in_scope(m)
	reachable(m)
	not outside_working_hours
}

# reachable says the caller's network may call the model.
reachable(model) if not sensitive(model)

reachable(model) if {
	sensitive(model)
	from_trusted_network
}

outside_working_hours if {
	some g in groups
	g in tables.working_hours.groups
	not working_hours
}

in_scope(_) if not input.identity.claims.models

in_scope(model) if model in input.identity.claims.models

sensitive(model) if {
	some pattern in tables.sensitive_models
	glob.match(pattern, null, model)
}

from_trusted_network if {
	some cidr in tables.networks.trusted
	net.cidr_contains(cidr, input.request.client_ip)
}

working_hours if {
	ns := input.time.unix * 1000000000
	not time.weekday(ns) in {"Saturday", "Sunday"}
	[hour, _, _] := time.clock(ns)
	hour >= tables.working_hours.from_hour
	hour < tables.working_hours.to_hour
}

# --- Limits -----------------------------------------------------------------

default max_tokens := 0

max_tokens := tables.services.max_tokens if is_service

# Every group of the caller has its own daily budget, shared by its
# members; every caller has a monthly budget in dollars.
budgets := array.concat(
	[{"key": sprintf("group:%s", [g]), "window": "day", "tokens": tables.groups[g].daily_tokens} |
		some g in groups
		tables.groups[g].daily_tokens
	],
	[{"key": sprintf("user:%s", [input.identity.subject]), "window": "month", "usd": tables.defaults.user_monthly_usd}],
)

requests_per_minute := max(limits) if {
	limits := [n | some g in groups; n := tables.groups[g].requests_per_minute]
	count(limits) > 0
} else := tables.defaults.requests_per_minute

tokens_per_minute := max(limits) if {
	limits := [n | some g in groups; n := tables.groups[g].tokens_per_minute]
	count(limits) > 0
} else := tables.defaults.tokens_per_minute

default tool_violation := "strip"

tool_violation := "deny" if is_service
