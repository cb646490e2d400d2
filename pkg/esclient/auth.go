package esclient

import "net/http"

// Auth is what a request authenticates with: an API key when set (sent as
// "Authorization: ApiKey <key>", the base64 of id:key), else basic auth
// when a user is set, else nothing.
type Auth struct {
	Username, Password string
	APIKey             string
}

// Apply sets the request's Authorization header.
func (a Auth) Apply(req *http.Request) {
	switch {
	case a.APIKey != "":
		req.Header.Set("Authorization", "ApiKey "+a.APIKey)
	case a.Username != "":
		req.SetBasicAuth(a.Username, a.Password)
	}
}

// Fill takes the credentials of a URL's userinfo when no user was given
// otherwise; a password given otherwise stays.
func (a *Auth) Fill(fromURL Auth) {
	if a.Username != "" || fromURL.Username == "" {
		return
	}
	a.Username = fromURL.Username
	if a.Password == "" {
		a.Password = fromURL.Password
	}
}

// String shows which credentials are set, never their values, so an Auth
// printed by accident (%v of a config) leaks nothing.
func (a Auth) String() string {
	switch {
	case a.APIKey != "":
		return "api key xxxxx"
	case a.Username != "":
		return "user " + a.Username + " password xxxxx"
	}
	return "no credentials"
}

// GoString is String for %#v.
func (a Auth) GoString() string { return "esclient.Auth{" + a.String() + "}" }
