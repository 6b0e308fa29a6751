package portcullis_test

import data.portcullis

call(groups, model) := {
	"identity": {"type": "apikey", "subject": "alice", "groups": groups, "claims": {}},
	"request": {"api": "chat", "model": model},
}

test_ml_may_use_o3 if {
	portcullis.decision.allow with input as call(["ml-research"], "o3-mini")
}

test_support_may_not_use_gpt_4_1 if {
	d := portcullis.decision with input as call(["support"], "gpt-4.1")
	d == {"allow": false, "reasons": [`model "gpt-4.1" is not allowed for teams ["support"]`]}
}

test_no_team_is_denied if {
	d := portcullis.decision with input as call(["marketing"], "gpt-4o-mini")
	d.reasons == ["the caller is in no team"]
}

test_team_budgets if {
	d := portcullis.decision with input as call(["support"], "gpt-4o-mini")
	d.budgets == [
		{"key": "team:support", "window": "month", "usd": 200},
		{"key": "team:support", "window": "day", "tokens": 2000000},
	]
}

test_two_teams_count_against_both_and_get_the_smaller_cap if {
	d := portcullis.decision with input as call(["ml-platform", "support"], "gpt-4o-mini")
	[b.key | some b in d.budgets] == ["team:ml", "team:ml", "team:support", "team:support"]
	d.max_tokens == 1024
}

test_no_cap_for_ml if {
	d := portcullis.decision with input as call(["ml-research"], "gpt-4.1")
	d.max_tokens == 0
}

test_narrowed_key_keeps_to_its_models if {
	narrowed := object.union(call(["ml-research"], "gpt-4.1"), {"identity": {"claims": {"models": ["gpt-4o-mini"]}}})
	d := portcullis.decision with input as narrowed
	d.reasons == [`the credential is narrowed to the models ["gpt-4o-mini"]`]
}

test_models_lists_team_models_within_scope if {
	base := object.union(call(["ml-research"], ""), {"models": ["demo", "gpt-4.1", "gpt-4o-mini", "o3-pro"]})
	visible := portcullis.models with input as base
	visible == {"gpt-4.1", "gpt-4o-mini", "o3-pro"}
	narrowed := object.union(base, {"identity": {"claims": {"models": ["gpt-4o-mini"]}}})
	portcullis.models == {"gpt-4o-mini"} with input as narrowed
}

# The table is data: a test can swap it for another.
test_a_new_team_from_data if {
	teams := {"legal": {"groups": ["legal"], "models": ["gpt-4.1"], "monthly_usd": 10, "daily_tokens": 1000, "max_tokens": 0}}
	portcullis.decision.allow with input as call(["legal"], "gpt-4.1") with data.teams as teams
}
