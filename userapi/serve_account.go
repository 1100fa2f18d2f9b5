package userapi

import "errors"

// serveAccount registers the handlers of the account endpoints.
func (u *UserAPI) serveAccount() error {
	return errors.Join(
		CheckPassword.Serve(u.bus, u.checkPassword),
		SetPassword.Serve(u.bus, u.setPassword),
		SetProfile.Serve(u.bus, u.setProfile),
		SearchUsers.Serve(u.bus, u.searchUsers),
		QueryDevices.Serve(u.bus, u.queryDevices),
		UpdateDevice.Serve(u.bus, u.updateDevice),
		DeleteDevices.Serve(u.bus, u.deleteDevices),
		Refresh.Serve(u.bus, u.refresh),
		CreateLoginToken.Serve(u.bus, u.createLoginToken),
		CreateUIASession.Serve(u.bus, u.createUIASession),
		QueryUIASession.Serve(u.bus, u.queryUIASession),
		CompleteUIAStage.Serve(u.bus, u.completeUIAStage),
		EndUIASession.Serve(u.bus, u.endUIASession),
		ListRegistrationTokens.Serve(u.bus, u.listRegistrationTokens),
		QueryRegistrationToken.Serve(u.bus, u.queryRegistrationToken),
		CreateRegistrationToken.Serve(u.bus, u.createRegistrationToken),
		UpdateRegistrationToken.Serve(u.bus, u.updateRegistrationToken),
		DeleteRegistrationToken.Serve(u.bus, u.deleteRegistrationToken),
		CheckRegistrationToken.Serve(u.bus, u.checkRegistrationToken),
		ReleaseRegistrationToken.Serve(u.bus, u.releaseRegistrationToken),
		// api_misc.go
		CreateOpenIDToken.Serve(u.bus, u.createOpenIDToken),
		QueryOpenIDToken.Serve(u.bus, u.queryOpenIDToken),
		QueryProfileFields.Serve(u.bus, u.queryProfileFields),
		SetProfileField.Serve(u.bus, u.setProfileField),
		QueryAccountFlags.Serve(u.bus, u.queryAccountFlags),
		SetAccountFlags.Serve(u.bus, u.setAccountFlags),
		ReportUser.Serve(u.bus, u.reportUser),
	)
}
