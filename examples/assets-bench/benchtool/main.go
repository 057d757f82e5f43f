// Command benchtool is the assets benchmark's helper (run.sh):
//
//	benchtool serve -addr 127.0.0.1:0 -buckets a,b -url-file FILE
//	    gofakes3 in memory on loopback, counting requests; GET
//	    /_bench/count returns the counts since the last call as JSON
//	benchtool gen DIR
//	    a Rails-like public/: 10,000 small files, 20 of 1-5 MB
//	benchtool list -endpoint URL -bucket B
//	    list the bucket with the SDK (ListObjectsV2, paged): the floor a
//	    no-change sync is measured against
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool serve|gen|list ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "gen":
		err = gen(os.Args[2:])
	case "list":
		err = list(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// counter counts requests by kind.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
	next   http.Handler
}

func kind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && (q.Has("list-type") || strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0):
		return "list"
	case r.Method == http.MethodHead:
		return "head"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "part"
	case r.Method == http.MethodPut:
		return "put"
	case r.Method == http.MethodPost && (q.Has("uploads") || q.Has("uploadId")):
		return "multipart"
	case r.Method == http.MethodPost && q.Has("delete"), r.Method == http.MethodDelete:
		return "delete"
	case r.Method == http.MethodGet:
		return "get"
	}
	return "other"
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_bench/count" {
		c.mu.Lock()
		out := c.counts
		c.counts = map[string]int{}
		c.mu.Unlock()
		total := 0
		for _, n := range out {
			total += n
		}
		out["total"] = total
		json.NewEncoder(w).Encode(out)
		return
	}
	c.mu.Lock()
	c.counts[kind(r)]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	buckets := fs.String("buckets", "bench", "comma-separated buckets to create")
	urlFile := fs.String("url-file", "", "write the endpoint URL here once listening")
	fs.Parse(args)
	backend := s3mem.New()
	for _, b := range strings.Split(*buckets, ",") {
		if err := backend.CreateBucket(b); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile+".tmp", []byte(url+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*urlFile+".tmp", *urlFile); err != nil {
			return err
		}
	}
	fake := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	return http.Serve(ln, &counter{counts: map[string]int{}, next: fake.Server()})
}

// gen writes the tree: fingerprinted assets (js, css, maps, images,
// fonts) of 200 B to 30 KB under assets/ and packs/, some pages and
// images at the top, and 20 downloads of 1-5 MB.
func gen(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: benchtool gen DIR")
	}
	dir := args[0]
	r := rand.New(rand.NewPCG(12, 34))
	exts := []string{"js", "css", "js.map", "png", "svg", "woff2", "gz", "jpg"}
	groups := []string{"assets", "assets/admin", "assets/vendor", "packs/js", "packs/css", "packs/media/images", "images", "images/icons"}
	write := func(rel string, size int) error {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return os.WriteFile(p, b, 0o644)
	}
	for _, page := range []string{"404.html", "422.html", "500.html", "robots.txt", "favicon.ico", "apple-touch-icon.png"} {
		if err := write(page, 200+r.IntN(3000)); err != nil {
			return err
		}
	}
	for i := range 10000 - 6 {
		g := groups[i%len(groups)]
		sub := fmt.Sprintf("%s/%02d", g, i%40)
		name := fmt.Sprintf("%s/file%05d-%016x.%s", sub, i, r.Uint64(), exts[r.IntN(len(exts))])
		if err := write(name, 200+r.IntN(30000)); err != nil {
			return err
		}
	}
	for i := range 20 {
		if err := write(fmt.Sprintf("downloads/brochure-%02d.pdf", i), (1<<20)+r.IntN(4<<20)); err != nil {
			return err
		}
	}
	return nil
}

func list(args []string) error {
	fs := flag.NewFlagSet("list", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "S3 endpoint URL")
	bucket := fs.String("bucket", "", "bucket")
	fs.Parse(args)
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("bench", "bench-secret", ""),
		BaseEndpoint: aws.String(*endpoint),
		UsePathStyle: true,
	})
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(*bucket)})
	n := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			return err
		}
		n += len(page.Contents)
	}
	fmt.Println(n)
	return nil
}
