// Command visible measures how soon a registration shows in roster's DNS
// answers: it registers an instance of a new service over HTTP, then asks
// DNS for the service over UDP until the answer holds it, and reports the
// time from sending the registration to the first answer that holds it,
// and from the registration's reply to that answer, over many rounds.
//
//	go run ./bench/dns/visible -http 127.0.0.1:8500 -dns 127.0.0.1:8600
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/miekg/dns"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8500", "agent HTTP address")
	dnsAddr := flag.String("dns", "127.0.0.1:8600", "agent DNS address")
	rounds := flag.Int("rounds", 200, "registrations to time")
	flag.Parse()
	if err := run(*httpAddr, *dnsAddr, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "visible:", err)
		os.Exit(1)
	}
}

func run(httpAddr, dnsAddr string, rounds int) error {
	client := &http.Client{Timeout: 10 * time.Second}
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	conn, err := c.Dial(dnsAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	var fromSend, fromReply []time.Duration
	polls := 0
	for i := range rounds {
		svc := fmt.Sprintf("vis-%d-%d", time.Now().UnixNano()%1e6, i)
		body := []byte(`{"address":"10.9.0.1","port":80}`)
		req, err := http.NewRequest("PUT", "http://"+httpAddr+"/v1/services/"+svc+"/instances/i-1", bytes.NewReader(body))
		if err != nil {
			return err
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		replied := time.Now()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("register %s: %s", svc, resp.Status)
		}
		q := new(dns.Msg)
		q.SetQuestion(svc+".service.roster.", dns.TypeA)
		deadline := time.Now().Add(5 * time.Second)
		for {
			polls++
			r, _, err := c.ExchangeWithConn(q, conn)
			if err != nil {
				return err
			}
			if len(r.Answer) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not in DNS 5 s after registering", svc)
			}
		}
		seen := time.Now()
		fromSend = append(fromSend, seen.Sub(start))
		fromReply = append(fromReply, seen.Sub(replied))
	}
	fmt.Printf("rounds %d, DNS queries %d (%.2f per round)\n", rounds, polls, float64(polls)/float64(rounds))
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"registration sent -> in DNS", fromSend}, {"registration reply -> in DNS", fromReply}} {
		slices.Sort(s.d)
		fmt.Printf("%s: p50 %v p99 %v max %v\n", s.name, pct(s.d, 0.5), pct(s.d, 0.99), s.d[len(s.d)-1])
	}
	return nil
}

func pct(d []time.Duration, p float64) time.Duration {
	return d[min(int(float64(len(d))*p), len(d)-1)].Round(time.Microsecond)
}
