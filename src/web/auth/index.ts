export {
  credentialsFrom,
  assertCredentialsForEnv,
  authEnabled,
  type Credentials,
  type Role,
  type DashboardAuthSettings,
} from './credentials.ts';
export { authMiddleware } from './auth-middleware.ts';
export { csrfMiddleware } from './csrf-middleware.ts';
export { createLoginBrake, LOGIN_BRAKE } from './login-brake.ts';
