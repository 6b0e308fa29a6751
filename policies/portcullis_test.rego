package portcullis_test

import data.portcullis

caller(groups, model) := {
	"identity": {"type": "apikey", "subject": "s", "groups": groups},
	"request": {"api": "chat", "model": model},
}

test_demo_group_may_use_demo if {
	portcullis.decision.allow with input as caller(["demo"], "demo")
}

test_demo_group_may_use_demo_variants if {
	portcullis.decision.allow with input as caller(["demo"], "demo-error-429")
}

test_demo_group_may_not_use_gpt if {
	d := portcullis.decision with input as caller(["demo"], "gpt-4o-mini")
	not d.allow
	d.reasons == [`model "gpt-4o-mini" is not allowed for groups ["demo"]`]
}

test_engineering_may_use_anything if {
	portcullis.decision.allow with input as caller(["engineering"], "gpt-4.1")
}

test_groups_add_up if {
	portcullis.decision.allow with input as caller(["demo", "analysts"], "gpt-4o-mini")
}

test_no_groups_is_denied if {
	not portcullis.decision.allow with input as caller([], "demo")
}
