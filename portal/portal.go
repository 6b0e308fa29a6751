// Package portal serves the pages people see in the browser: the sign-in
// page that lists the identity providers, the signed-in home page (who am
// I, my groups, the models the policy lets me use), the page that mints a
// personal token for SDKs and CLIs and shows it once, and the pages for
// signed-out, not-allowed and failed sign-ins. The pages are rendered on
// the server with html/template and one small stylesheet; they need no
// script.
package portal

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"portcullis/authn"
	"portcullis/usage"
)

//go:embed templates/*.html
var templates embed.FS

//go:embed static/style.css
var stylesheet []byte

// ModelLister says which models the policy lets an identity use, as GET
// /v1/models would list them for the same request.
type ModelLister interface {
	AllowedModels(r *http.Request, id *authn.Identity) ([]string, error)
}

// UsageReader says where a caller stands against its budgets and rate
// limits; the proxy is one.
type UsageReader interface {
	Usage(r *http.Request, id *authn.Identity) ([]usage.Standing, error)
}

// Minter signs personal tokens; *authn.Minter is one.
type Minter interface {
	Mint(id *authn.Identity, lifetime time.Duration, models []string, now time.Time) (*authn.Minted, error)
	MaxLifetime() time.Duration
}

// Portal is the signed-in web pages. Build it with New; Handler serves
// them.
type Portal struct {
	sso       *authn.SSO
	models    ModelLister
	minter    Minter      // nil: no token form
	usage     UsageReader // nil: no usage table
	publicURL string
	tmpl      *template.Template
	csp       string
	// OnMint, when set, is told of every token minted here, for the log.
	onMint func(r *http.Request, id *authn.Identity, m *authn.Minted)
}

// Options are what New needs; Minter, Usage and OnMint may be nil.
type Options struct {
	SSO       *authn.SSO
	Models    ModelLister
	Minter    Minter
	Usage     UsageReader
	PublicURL string
	// FormTargets are the origins a form may lead to besides the gateway
	// itself: the IdPs, which sign-out redirects to.
	FormTargets []string
	OnMint      func(r *http.Request, id *authn.Identity, m *authn.Minted)
}

// Paths the portal serves besides those of authn.
const (
	TokensPath     = "/portal/tokens"
	StylesheetPath = "/portal/style.css"
)

// New parses the templates and returns the portal.
func New(o Options) *Portal {
	funcs := template.FuncMap{"join": strings.Join}
	p := &Portal{
		sso:       o.SSO,
		models:    o.Models,
		minter:    o.Minter,
		usage:     o.Usage,
		publicURL: strings.TrimSuffix(o.PublicURL, "/"),
		tmpl:      template.Must(template.New("").Funcs(funcs).ParseFS(templates, "templates/*.html")),
		onMint:    o.OnMint,
	}
	formTargets := "'self'"
	for _, t := range o.FormTargets {
		formTargets += " " + t
	}
	// The pages run no script and load nothing from elsewhere; a form may
	// only lead here or to a sign-out page of an IdP.
	p.csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action " + formTargets + "; frame-ancestors 'none'; base-uri 'none'"
	return p
}

// Handler serves the portal's pages: the home page and the token form
// under /portal/, and the sign-in and signed-out pages of the flow.
func (p *Portal) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(authn.HomePath, p.home)
	mux.HandleFunc(TokensPath, p.tokens)
	mux.HandleFunc(StylesheetPath, p.style)
	mux.HandleFunc(authn.SignInPath, p.signIn)
	mux.HandleFunc(authn.SignedOutPath, p.signedOut)
	return mux
}

// page is what every template gets.
type page struct {
	Title     string
	Identity  *authn.Identity
	CSRF      string
	Providers []providerLink
	Models    []string
	Overage   bool
	// IdP is the display name of the identity provider the person signed
	// in with.
	IdP       string
	Status    int
	Message   string
	Token     *tokenView
	Lifetimes []lifetimeChoice
	CanMint   bool
	// Usage is the caller's standing against each limit; UsageError says
	// why it could not be read.
	Usage      []usageRow
	UsageError string
	BaseURL    string // the OpenAI-style API root, PublicURL/v1
	PublicURL  string
	Error      string
}

// usageRow is one budget or rate limit as the home page shows it.
type usageRow struct {
	// Who names whose limit it is in words ("You", "Group"); Key is the
	// rest of the budget key, shown as code.
	Who, Key                              string
	Window, Tokens, USD, Requests, Resets string
}

func usageRows(standings []usage.Standing, subject string) []usageRow {
	rows := make([]usageRow, 0, len(standings))
	for _, st := range standings {
		row := usageRow{
			Key:      st.Key,
			Window:   st.Window,
			Tokens:   ofLimit(thousands(st.UsedTokens), st.LimitTokens > 0, thousands(st.LimitTokens)),
			USD:      ofLimit(fmt.Sprintf("$%.4f", st.UsedUSD), st.LimitUSD > 0, fmt.Sprintf("$%.2f", st.LimitUSD)),
			Requests: ofLimit(thousands(st.UsedRequests), st.LimitRequests > 0, thousands(st.LimitRequests)),
			Resets:   st.Reset.UTC().Format("2006-01-02 15:04 UTC"),
		}
		switch kind, rest, _ := strings.Cut(st.Key, ":"); {
		case st.Key == "user:"+subject:
			row.Who, row.Key = "You", ""
		case kind == "group":
			row.Who, row.Key = "Group", rest
		}
		rows = append(rows, row)
	}
	return rows
}

// thousands writes n with thousands separators, as people read counts.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ofLimit is "used of limit", or used alone when there is no limit.
func ofLimit(used string, limited bool, limit string) string {
	if !limited {
		return used
	}
	return used + " of " + limit
}

type providerLink struct {
	Name, URL string
}

type tokenView struct {
	Value   string
	ID      string
	Expires string
}

type lifetimeChoice struct {
	Value, Label string
	Selected     bool
}

// home shows the signed-in person, their groups and models, and the token
// form; it sends a browser that is not signed in to sign in.
func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != authn.HomePath {
		p.RenderError(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		p.RenderError(w, r, http.StatusMethodNotAllowed, "This page only answers GET.")
		return
	}
	sess := authn.SessionFrom(r.Context())
	if sess == nil {
		http.Redirect(w, r, authn.SignInURL(authn.HomePath), http.StatusFound)
		return
	}
	p.render(w, r, http.StatusOK, p.homePage(r, sess, ""))
}

func (p *Portal) homePage(r *http.Request, sess *authn.Session, formError string) *page {
	id := sess.Identity()
	pg := &page{Title: "Your access", Identity: id, CSRF: sess.CSRF, BaseURL: p.publicURL + "/v1", PublicURL: p.publicURL, Error: formError}
	pg.Overage, _ = id.Claims["groups_overage"].(bool)
	pg.IdP, _ = id.Claims["idp"].(string)
	for _, pr := range p.sso.Providers() {
		if pr.Name == pg.IdP {
			pg.IdP = pr.DisplayName
		}
	}
	models, err := p.models.AllowedModels(r, id)
	if err != nil {
		pg.Error = "The policy could not be asked which models you may use; none are shown."
	}
	pg.Models = models
	if p.minter != nil && len(models) > 0 {
		pg.CanMint = true
		pg.Lifetimes = p.lifetimes()
	}
	if len(models) == 0 && err == nil {
		pg.Title = "Signed in, but not allowed anything"
	}
	if p.usage != nil && len(models) > 0 {
		standings, err := p.usage.Usage(r, id)
		if err != nil {
			pg.UsageError = "Your usage could not be read just now."
		}
		pg.Usage = usageRows(standings, id.Subject)
	}
	return pg
}

// lifetimes are the token lifetimes the form offers, up to the longest
// the gateway mints.
func (p *Portal) lifetimes() []lifetimeChoice {
	max := p.minter.MaxLifetime()
	var out []lifetimeChoice
	for _, d := range []time.Duration{15 * time.Minute, time.Hour, 8 * time.Hour, 24 * time.Hour} {
		if d <= max {
			out = append(out, lifetimeChoice{Value: d.String(), Label: humanDuration(d)})
		}
	}
	if !slices.ContainsFunc(out, func(c lifetimeChoice) bool { return c.Value == max.String() }) {
		out = append(out, lifetimeChoice{Value: max.String(), Label: humanDuration(max)})
	}
	out[0].Selected = true
	return out
}

// tokens mints a personal token (POST /portal/tokens) and shows it once.
func (p *Portal) tokens(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		p.RenderError(w, r, http.StatusMethodNotAllowed, "Create a token with the form on the home page.")
		return
	}
	sess := authn.SessionFrom(r.Context())
	if sess == nil {
		http.Redirect(w, r, authn.SignInURL(authn.HomePath), http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := p.sso.CheckCSRF(r, sess, r.PostFormValue("csrf")); err != nil {
		p.RenderError(w, r, http.StatusForbidden, "The form was refused: "+err.Error()+". Reload the home page and try again.")
		return
	}
	if p.minter == nil {
		p.RenderError(w, r, http.StatusNotFound, "This gateway does not mint tokens (identity.tokens is not configured).")
		return
	}
	id := sess.Identity()
	pg := p.homePage(r, sess, "")
	if len(pg.Models) == 0 {
		p.render(w, r, http.StatusForbidden, pg)
		return
	}
	lifetime, err := time.ParseDuration(r.PostFormValue("lifetime"))
	if err != nil || lifetime <= 0 {
		p.render(w, r, http.StatusBadRequest, p.homePage(r, sess, "Choose how long the token should last."))
		return
	}
	minted, err := p.minter.Mint(id, lifetime, nil, time.Now())
	if err != nil {
		p.render(w, r, http.StatusBadRequest, p.homePage(r, sess, "The token could not be created: "+err.Error()+"."))
		return
	}
	if p.onMint != nil {
		p.onMint(r, id, minted)
	}
	pg.Title = "Your new token"
	pg.Token = &tokenView{Value: minted.Token, ID: minted.ID, Expires: minted.Expires.UTC().Format("2006-01-02 15:04 MST")}
	p.render(w, r, http.StatusOK, pg)
}

// signIn lists the identity providers; with one, it goes straight there.
func (p *Portal) signIn(w http.ResponseWriter, r *http.Request) {
	rd := authn.SafeReturnTo(r.URL.Query().Get("rd"))
	providers := p.sso.Providers()
	if len(providers) == 1 {
		http.Redirect(w, r, authn.StartURL(providers[0].Name, rd), http.StatusFound)
		return
	}
	pg := &page{Title: "Sign in"}
	for _, pr := range providers {
		pg.Providers = append(pg.Providers, providerLink{Name: pr.DisplayName, URL: authn.StartURL(pr.Name, rd)})
	}
	p.render(w, r, http.StatusOK, pg)
}

func (p *Portal) signedOut(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, &page{Title: "Signed out"})
}

func (p *Portal) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(stylesheet)
}

// RenderError answers a browser with a page that says what went wrong;
// the sign-in flow uses it too.
func (p *Portal) RenderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	p.render(w, r, status, &page{Title: http.StatusText(status), Status: status, Message: message})
}

func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, pg *page) {
	name := "home.html"
	switch {
	case pg.Status != 0:
		name = "error.html"
	case pg.Token != nil:
		name = "token.html"
	case pg.Providers != nil:
		name = "sign_in.html"
	case pg.Identity == nil:
		name = "signed_out.html"
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, which the CSRF check must refuse.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = p.tmpl.ExecuteTemplate(w, name, pg)
}

func humanDuration(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "1 hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}
