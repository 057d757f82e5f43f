// Package cloudfronttest is a CloudFront test server for the
// invalidation API, speaking the REST-XML protocol of API version
// 2020-05-31 as CloudFront documents it, for tests of code that uses the
// SDK's cloudfront client (pointed at it with BaseEndpoint):
//
//   - CreateInvalidation: POST /2020-05-31/distribution/{Id}/invalidation
//     with an InvalidationBatch; 201 Created with the Invalidation, status
//     InProgress, and its Location. The same CallerReference with the same
//     paths returns the invalidation made before; with other paths it is
//     InvalidationBatchAlreadyExists. A Quantity that does not match the
//     paths, a path not starting with "/", an empty CallerReference are
//     InvalidArgument; more than 3,000 paths (or 15 wildcard paths) in
//     progress on a distribution is TooManyInvalidationsInProgress.
//   - GetInvalidation: GET /2020-05-31/distribution/{Id}/invalidation/{Id};
//     InProgress until the server's delay has passed since it was
//     created, then Completed. An unknown id is NoSuchInvalidation.
//
// An unknown distribution is NoSuchDistribution (404); a request without
// a Signature Version 4 Authorization header is AccessDenied (403).
// Errors are CloudFront's ErrorResponse documents.
package cloudfronttest

import (
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// APIVersion is the API version in every path.
const APIVersion = "2020-05-31"

const xmlns = "http://cloudfront.amazonaws.com/doc/" + APIVersion + "/"

// Limits CloudFront documents for invalidations in progress at once on
// one distribution.
const (
	maxPathsInProgress    = 3000
	maxWildcardInProgress = 15
)

// Server is the test server; use it as an http.Handler (behind
// httptest.NewServer). Safe for concurrent use.
type Server struct {
	mu            sync.Mutex
	completeAfter time.Duration
	now           func() time.Time
	dists         map[string]*distribution
	requests      []Request
}

// Request is one request the server answered, for tests to count.
type Request struct {
	Method, Path string
	// Paths are a CreateInvalidation's paths.
	Paths []string
}

// Invalidation is one invalidation as the server keeps it.
type Invalidation struct {
	ID, CallerReference string
	Paths               []string
	Created             time.Time
}

type distribution struct {
	invalidations []*Invalidation
}

// New returns a server whose invalidations complete completeAfter after
// they are created (0: at once, on the first GetInvalidation).
func New(completeAfter time.Duration) *Server {
	return &Server{completeAfter: completeAfter, now: time.Now, dists: map[string]*distribution{}}
}

// AddDistribution makes a distribution with id exist.
func (s *Server) AddDistribution(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dists[id] == nil {
		s.dists[id] = &distribution{}
	}
}

// Invalidations are those made on a distribution, oldest first.
func (s *Server) Invalidations(id string) []Invalidation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Invalidation
	if d := s.dists[id]; d != nil {
		for _, inv := range d.invalidations {
			out = append(out, *inv)
		}
	}
	return out
}

// Requests returns the requests answered since the last call, and forgets them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.requests
	s.requests = nil
	return out
}

// The documents of the API, as the SDK's serializers write and read them.
type pathsXML struct {
	Quantity int      `xml:"Quantity"`
	Items    []string `xml:"Items>Path"`
}

type batchXML struct {
	XMLName         xml.Name `xml:"InvalidationBatch"`
	Paths           pathsXML `xml:"Paths"`
	CallerReference string   `xml:"CallerReference"`
}

type invalidationXML struct {
	XMLName           xml.Name `xml:"Invalidation"`
	Xmlns             string   `xml:"xmlns,attr"`
	ID                string   `xml:"Id"`
	Status            string   `xml:"Status"`
	CreateTime        string   `xml:"CreateTime"`
	InvalidationBatch struct {
		Paths           pathsXML `xml:"Paths"`
		CallerReference string   `xml:"CallerReference"`
	} `xml:"InvalidationBatch"`
}

type errorXML struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// apiError is an error response: its HTTP status, code and message.
type apiError struct {
	status        int
	code, message string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, body, header, err := s.handle(r)
	requestID := newID("R", 20)
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.Header().Set("Content-Type", "text/xml")
	if err != nil {
		e := errorXML{Xmlns: xmlns, RequestID: requestID}
		e.Error.Type = "Sender"
		e.Error.Code, e.Error.Message = err.code, err.message
		w.WriteHeader(err.status)
		writeXML(w, e)
		return
	}
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	writeXML(w, body)
}

func writeXML(w io.Writer, v any) {
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(v)
}

// handle routes a request: /2020-05-31/distribution/{Id}/invalidation[/{Id}].
func (s *Server) handle(r *http.Request) (int, any, map[string]string, *apiError) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Request{Method: r.Method, Path: r.URL.Path}
	defer func() { s.requests = append(s.requests, rec) }()
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		return 0, nil, nil, &apiError{http.StatusForbidden, "AccessDenied", "Access denied: the request is not signed."}
	}
	if len(parts) < 4 || parts[0] != APIVersion || parts[1] != "distribution" || parts[3] != "invalidation" || len(parts) > 5 {
		return 0, nil, nil, &apiError{http.StatusNotFound, "InvalidArgument", "No operation at " + r.Method + " " + r.URL.Path + " in API version " + APIVersion + "."}
	}
	d := s.dists[parts[2]]
	if d == nil {
		return 0, nil, nil, &apiError{http.StatusNotFound, "NoSuchDistribution", "The specified distribution does not exist."}
	}
	switch {
	case len(parts) == 4 && r.Method == http.MethodPost:
		var b batchXML
		if err := xml.Unmarshal(body, &b); err != nil {
			return 0, nil, nil, &apiError{http.StatusBadRequest, "MalformedInput", "The InvalidationBatch document is malformed: " + err.Error()}
		}
		rec.Paths = b.Paths.Items
		inv, created, err := s.create(d, b)
		if err != nil {
			return 0, nil, nil, err
		}
		status := http.StatusOK // an earlier invalidation, returned again
		if created {
			status = http.StatusCreated
		}
		loc := fmt.Sprintf("https://cloudfront.amazonaws.com/%s/distribution/%s/invalidation/%s", APIVersion, parts[2], inv.ID)
		return status, s.document(inv), map[string]string{"Location": loc}, nil
	case len(parts) == 5 && r.Method == http.MethodGet:
		for _, inv := range d.invalidations {
			if inv.ID == parts[4] {
				return http.StatusOK, s.document(inv), nil, nil
			}
		}
		return 0, nil, nil, &apiError{http.StatusNotFound, "NoSuchInvalidation", "The specified invalidation does not exist."}
	}
	return 0, nil, nil, &apiError{http.StatusMethodNotAllowed, "InvalidArgument", r.Method + " is not supported on " + r.URL.Path + "."}
}

// create validates a batch and records the invalidation; created is false
// when the caller reference names an earlier one with the same paths.
func (s *Server) create(d *distribution, b batchXML) (inv *Invalidation, created bool, err *apiError) {
	switch {
	case b.CallerReference == "":
		return nil, false, &apiError{http.StatusBadRequest, "InvalidArgument", "CallerReference is required."}
	case b.Paths.Quantity != len(b.Paths.Items):
		return nil, false, &apiError{http.StatusBadRequest, "InvalidArgument",
			fmt.Sprintf("Paths: Quantity %d does not match the number of paths (%d).", b.Paths.Quantity, len(b.Paths.Items))}
	case len(b.Paths.Items) == 0:
		return nil, false, &apiError{http.StatusBadRequest, "InvalidArgument", "Paths: at least one path is required."}
	}
	for _, p := range b.Paths.Items {
		if !strings.HasPrefix(p, "/") {
			return nil, false, &apiError{http.StatusBadRequest, "InvalidArgument", fmt.Sprintf("Path %q must begin with a slash.", p)}
		}
	}
	for _, old := range d.invalidations {
		if old.CallerReference == b.CallerReference {
			if slices.Equal(old.Paths, b.Paths.Items) {
				return old, false, nil
			}
			return nil, false, &apiError{http.StatusConflict, "InvalidationBatchAlreadyExists",
				"An invalidation with CallerReference " + b.CallerReference + " already exists with other paths."}
		}
	}
	paths, wild := 0, 0
	for _, old := range d.invalidations {
		if s.status(old) == "InProgress" {
			paths += len(old.Paths)
			wild += wildcards(old.Paths)
		}
	}
	if paths+len(b.Paths.Items) > maxPathsInProgress || wild+wildcards(b.Paths.Items) > maxWildcardInProgress {
		return nil, false, &apiError{http.StatusBadRequest, "TooManyInvalidationsInProgress",
			fmt.Sprintf("You have exceeded the maximum number of allowable InProgress invalidation batch requests (%d paths, %d wildcard paths).", maxPathsInProgress, maxWildcardInProgress)}
	}
	inv = &Invalidation{ID: newID("I", 13), CallerReference: b.CallerReference, Paths: slices.Clone(b.Paths.Items), Created: s.now()}
	d.invalidations = append(d.invalidations, inv)
	return inv, true, nil
}

func wildcards(paths []string) int {
	n := 0
	for _, p := range paths {
		if strings.HasSuffix(p, "*") {
			n++
		}
	}
	return n
}

func (s *Server) status(inv *Invalidation) string {
	if s.now().Sub(inv.Created) >= s.completeAfter {
		return "Completed"
	}
	return "InProgress"
}

func (s *Server) document(inv *Invalidation) invalidationXML {
	doc := invalidationXML{Xmlns: xmlns, ID: inv.ID, Status: s.status(inv), CreateTime: inv.Created.UTC().Format(time.RFC3339)}
	doc.InvalidationBatch.CallerReference = inv.CallerReference
	doc.InvalidationBatch.Paths = pathsXML{Quantity: len(inv.Paths), Items: inv.Paths}
	return doc
}

// newID is an id in CloudFront's form: a letter, then uppercase letters
// and digits.
func newID(letter string, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return letter + string(b)
}
