package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// listen binds addr and prints the server's URL on stdout, which bench
// reads to find it.
func listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Printf("listening http://%s\n", l.Addr())
	return l, nil
}

func server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}

const fakeModel = "gpt-4o-mini-2024-07-18"

const fakeUsage = `{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,` +
	`"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`

var (
	fakeBody = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"` + fakeModel + `",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help?"},"finish_reason":"stop"}],` +
		`"usage":` + fakeUsage + `}`)
	fakeChunks = func() [][]byte {
		var out [][]byte
		for _, piece := range []string{"Hello", "!", " How", " can", " I", " help", "?"} {
			out = append(out, []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"`+fakeModel+
				`","choices":[{"index":0,"delta":{"content":"`+piece+`"},"finish_reason":null}],"usage":null}`+"\n\n"))
		}
		return out
	}()
	fakeUsageChunk = []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"` + fakeModel +
		`","choices":[],"usage":` + fakeUsage + "}\n\n")
)

// serveFake answers every chat completion at once, streamed (one flush per
// event, as providers send them) or not.
func serveFake(args []string) error {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := listen(*addr)
	if err != nil {
		return err
	}
	return server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(fakeBody)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, c := range fakeChunks {
			w.Write(c)
			rc.Flush()
		}
		if strings.Contains(string(body), `"include_usage":true`) {
			w.Write(fakeUsageChunk)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})).Serve(l)
}

// serveProxy is the floor: the standard library's reverse proxy, flushing
// streams at once, with a tuned transport like the gateway's.
func serveProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	target := fs.String("target", "", "upstream base URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-target must be a URL")
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1
	p.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	l, err := listen(*addr)
	if err != nil {
		return err
	}
	return server(p).Serve(l)
}
