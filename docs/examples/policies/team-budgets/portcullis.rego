# Example: a team table in data, and one decision per team.
#
# The teams are in teams/data.yaml, which the gateway loads as data.teams.
# Each team has its models, a monthly budget in dollars and a daily budget in
# tokens shared by its members, and an output cap.
package portcullis

# --- The decision -----------------------------------------------------------

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": false, "reasons": sort(deny)} if count(deny) > 0

decision := {
	"allow": true,
	"max_tokens": max_tokens,
	"budgets": budgets,
} if {
	count(deny) == 0
}

# --- Teams --------------------------------------------------------------------

# my_teams are the names of the teams that list one of the caller's groups.
my_teams contains name if {
	some name, team in data.teams
	some g in input.identity.groups
	g in team.groups
}

team_allows(model) if {
	some name in my_teams
	some pattern in data.teams[name].models
	glob.match(pattern, null, model)
}

# --- Why a call is refused ------------------------------------------------------

deny contains "the caller is in no team" if count(my_teams) == 0

deny contains msg if {
	count(my_teams) > 0
	not team_allows(input.request.model)
	msg := sprintf("model %q is not allowed for teams %v", [input.request.model, sort(my_teams)])
}

# A key or token narrowed to some models (input.identity.claims.models)
# keeps to them.
deny contains msg if {
	scope := input.identity.claims.models
	not input.request.model in scope
	msg := sprintf("the credential is narrowed to the models %v", [scope])
}

# --- Limits ---------------------------------------------------------------------

# Every team of the caller has its own budgets.
budgets := [b |
	some name in sort(my_teams)
	team := data.teams[name]
	some b in [
		{"key": sprintf("team:%s", [name]), "window": "month", "usd": team.monthly_usd},
		{"key": sprintf("team:%s", [name]), "window": "day", "tokens": team.daily_tokens},
	]
]

# The smallest cap among the caller's teams; 0 (no cap) when none sets one.
caps := [c | some name in my_teams; c := data.teams[name].max_tokens; c > 0]

max_tokens := min(caps) if {
	count(caps) > 0
} else := 0

# --- GET /v1/models ---------------------------------------------------------------

models contains m if {
	some m in input.models
	team_allows(m)
	not outside_scope(m)
}

outside_scope(m) if {
	scope := input.identity.claims.models
	not m in scope
}
