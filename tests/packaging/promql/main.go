// promql-check: parse the expressions of Prometheus rule groups (YAML on stdin, a
// PrometheusRule's spec) with Prometheus' own parser; print each error, exit 1 on any.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var r rules
	if err := yaml.Unmarshal(raw, &r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	failed, n := false, 0
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			n++
			if _, err := p.ParseExpr(rule.Expr); err != nil {
				fmt.Printf("%s/%s%s: %v\n", g.Name, rule.Alert, rule.Record, err)
				failed = true
			}
		}
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("%d expressions parsed\n", n)
}
