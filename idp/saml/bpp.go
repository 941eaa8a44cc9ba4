package saml

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
)

// OIO-BPP (basic privilege profile) as OIOSAML 3.0 carries it in privilegesIntermediate.
const (
	BPPNamespace = "http://digst.dk/oiosaml/basic_privilege_profile"
	// BPPScopePrefix names a person by CPR number in a PrivilegeGroup's Scope.
	BPPScopePrefix = "urn:dk:gov:saml:cprNumberIdentifier:"
	// BPPGuardianPrefix + the guardianship's kind (full, partial) is the privilege.
	BPPGuardianPrefix = "urn:dk:gov:nemid:guardian:"
)

// bppList is an OIO-BPP PrivilegeList: the root is in the BPP namespace, its children are
// unqualified (as the profile's examples and schema have them).
type bppList struct {
	XMLName xml.Name   `xml:"bpp:PrivilegeList"`
	NS      string     `xml:"xmlns:bpp,attr"`
	Groups  []bppGroup `xml:"PrivilegeGroup"`
}

type bppGroup struct {
	Scope      string   `xml:"Scope,attr"`
	Privileges []string `xml:"Privilege"`
}

// PrivilegeList is the base64 OIO-BPP PrivilegeList naming the ward (by CPR number) a
// guardian acts for, with the guardianship's kind as the one privilege.
func PrivilegeList(wardCPR, kind string) (string, error) {
	if wardCPR == "" || (kind != "full" && kind != "partial") {
		return "", fmt.Errorf("saml: privileges: a ward's CPR number and a kind full|partial are needed")
	}
	raw, err := xml.Marshal(bppList{NS: BPPNamespace, Groups: []bppGroup{{
		Scope: BPPScopePrefix + wardCPR, Privileges: []string{BPPGuardianPrefix + kind}}}})
	if err != nil {
		return "", fmt.Errorf("saml: privileges: %w", err)
	}
	return base64.StdEncoding.EncodeToString(append([]byte(xml.Header), raw...)), nil
}
