export {
  credentialsFrom,
  assertCredentialsForEnv,
  authEnabled,
  safeEqual,
  checkPassword,
  checkToken,
  type Credentials,
  type Role,
  type DashboardAuthSettings,
} from './credentials.ts';
export { authMiddleware } from './auth-middleware.ts';
export { csrfMiddleware, CSRF_COOKIE, CSRF_HEADER } from './csrf-middleware.ts';
export { createLoginBrake, LOGIN_BRAKE, type LoginBrake } from './login-brake.ts';
